# The same method twice on a device.
# @expect error Duplicate method block
device "a" {
  method "m" {
    status = 200
  }
  method "m" {
    status = 200
  }
}
