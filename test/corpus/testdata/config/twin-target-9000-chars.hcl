# A target over 8,192 characters.
# @expect error Invalid target query
twin "t" {
  target  = "deviceId = '${format("%9000s", "x")}'"
  desired = { a = 1 }
}
