# A negative count.
# @expect error Invalid number
group "g" {
  count = -1
  id    = format("g-%d", index)
}
