# A churn interval that is not a duration.
# @expect error Invalid churn interval
group "g" {
  count = 2
  id    = format("g-%d", index)
  churn {
    interval = "often"
  }
}
