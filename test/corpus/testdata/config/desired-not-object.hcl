# desired that is a string.
# @expect error Incorrect attribute value type
twin "t" {
  target = "deviceId = 'a'"
  desired = "a=1"
}
