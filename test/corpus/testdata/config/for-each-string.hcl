# for_each over a string.
# @expect error Invalid for_each argument
twin "t" {
  for_each = "abc"
  target = "deviceId = 'a'"
  desired  = { a = 1 }
}
