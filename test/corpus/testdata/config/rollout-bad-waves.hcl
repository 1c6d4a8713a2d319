# Waves that do not end at 100%.
# @expect error Invalid waves
twin "t" {
  target = "deviceId = 'a'"
  desired = { a = 1 }
  rollout {
    waves = ["10%", "50%"]
  }
}
