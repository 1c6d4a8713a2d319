# count as a word.
# @expect error Incorrect attribute value type
group "g" {
  count = "ten"
  id    = format("g-%d", index)
}
