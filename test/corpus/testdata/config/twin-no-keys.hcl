# A twin that manages nothing.
# @expect error Twin manages nothing
twin "t" {
  target = "deviceId = 'a'"
}
