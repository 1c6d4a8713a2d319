# A control character in a tag name.
# @expect error Invalid key
twin "t" {
  target = "deviceId = 'a'"
  tags = { "a\u0001" = 1 }
}
