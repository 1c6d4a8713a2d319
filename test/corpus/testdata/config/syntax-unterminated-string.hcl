# An unterminated string.
# @expect error Invalid multi-line string
twin "t" {
  target = "deviceId = 'a'
}
