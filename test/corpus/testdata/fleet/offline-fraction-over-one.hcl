# A fraction above 1.
# @expect error Invalid fraction
group "g" {
  count            = 2
  id               = format("g-%d", index)
  offline_fraction = 2
}
