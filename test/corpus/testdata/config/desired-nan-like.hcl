# A number beyond float64 (HCL numbers are arbitrary precision).
# @expect error Number out of range
twin "t" {
  target = "deviceId = 'a'"
  desired = { a = 1e999 }
}
