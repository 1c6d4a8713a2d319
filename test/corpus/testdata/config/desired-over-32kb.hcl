# Desired over 32 KB.
# @expect error Twin section too large
twin "t" {
  target = "deviceId = 'a'"
  desired = { k0 = format("%4000s", "x"), k1 = format("%4000s", "x"), k2 = format("%4000s", "x"), k3 = format("%4000s", "x"), k4 = format("%4000s", "x"), k5 = format("%4000s", "x"), k6 = format("%4000s", "x"), k7 = format("%4000s", "x"), k8 = format("%4000s", "x") }
}
