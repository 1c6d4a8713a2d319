# An attribute twins do not have.
# @expect error Unsupported argument
twin "t" {
  target = "deviceId = 'a'"
  desired = { a = 1 }
  colour = "red"
}
