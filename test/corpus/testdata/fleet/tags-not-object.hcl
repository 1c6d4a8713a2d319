# tags that is a string.
# @expect error Object required
device "a" {
  tags = "building 43"
}
