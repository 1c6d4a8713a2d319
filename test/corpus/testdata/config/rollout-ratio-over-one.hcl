# A failure ratio above 1.
# @expect error Incorrect attribute value type
twin "t" {
  target = "deviceId = 'a'"
  desired = { a = 1 }
  rollout {
    waves             = ["100%"]
    max_failure_ratio = 1.5
  }
}
