# An integer beyond the hub's range.
# @expect error Integer out of range
twin "t" {
  target = "deviceId = 'a'"
  desired = { a = 9007199254740993 }
}
