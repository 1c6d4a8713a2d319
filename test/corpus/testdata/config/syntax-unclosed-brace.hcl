# An unclosed twin block.
# @expect error Unclosed
twin "t" {
  target = "deviceId = 'a'"
