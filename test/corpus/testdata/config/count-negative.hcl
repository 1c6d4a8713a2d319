# A negative count.
# @expect error Invalid count argument
twin "t" {
  count   = -1
  target = "deviceId = 'a'"
  desired = { a = 1 }
}
