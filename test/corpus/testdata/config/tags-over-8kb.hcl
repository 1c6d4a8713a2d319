# Tags over 8 KB.
# @expect error Twin section too large
twin "t" {
  target = "deviceId = 'a'"
  tags = { a = format("%3000s", "x"), b = format("%3000s", "x"), c = format("%3000s", "x") }
}
