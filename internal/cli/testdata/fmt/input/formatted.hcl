# Already formatted: fmt leaves it alone.
twin "floor" {
  target  = "*"
  desired = { floor = 3 }
}
