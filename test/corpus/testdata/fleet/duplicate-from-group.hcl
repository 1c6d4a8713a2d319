# A group whose id pattern repeats.
# @expect error Invalid id pattern
group "g" {
  count = 3
  id    = "same"
}
