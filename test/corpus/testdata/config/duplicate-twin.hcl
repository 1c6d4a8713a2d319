# Two twins with the same name.
# @expect error Duplicate
twin "t" {
  target = "deviceId = 'a'"
  desired = { a = 1 }
}
twin "t" {
  target = "deviceId = 'a'"
  desired = { b = 1 }
}
