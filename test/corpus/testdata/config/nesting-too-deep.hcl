# Eleven levels under desired.
# @expect error Nesting too deep
twin "t" {
  target = "deviceId = 'a'"
  desired = { a = { a = { a = { a = { a = { a = { a = { a = { a = { a = { a = 1 } } } } } } } } } } }
}
