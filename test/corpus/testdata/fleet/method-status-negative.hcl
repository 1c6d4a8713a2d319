# A negative status.
# @expect error Invalid number
device "a" {
  method "m" {
    status = -200
  }
}
