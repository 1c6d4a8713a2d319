# A trillion devices: refused without building them.
# @expect error Invalid number
group "g" {
  count = 1000000000000
  id    = format("g-%d", index)
}
