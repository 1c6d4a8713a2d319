# A fractional count.
# @expect error Invalid number
group "g" {
  count = 1.5
  id    = format("g-%d", index)
}
