# A device block and a group produce the same id.
# @expect error Duplicate device id
device "g-1" {}
group "g" {
  count = 3
  id    = format("g-%d", index)
}
