# A '$' key in desired.
# @expect error Invalid key
twin "t" {
  target = "deviceId = 'a'"
  desired = { "$a" = 1 }
}
