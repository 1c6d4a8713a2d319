# A string value over 4 KB.
# @expect error String value too long
twin "t" {
  target = "deviceId = 'a'"
  desired = { a = format("%4097s", "x") }
}
