# count and for_each together.
# @expect error Invalid combination of "count" and "for_each"
twin "t" {
  count    = 1
  for_each = { a = 1 }
  target = "deviceId = 'a'"
  desired  = { a = 1 }
}
