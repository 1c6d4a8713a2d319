# A method block without a method name.
# @expect error method
method "m" {
  target = "deviceId = 'a'"
}
