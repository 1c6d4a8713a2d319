# A group without count.
# @expect error count
group "g" {
  id = format("g-%d", index)
}
