# Two churn blocks.
# @expect error Duplicate churn block
group "g" {
  count = 2
  id    = format("g-%d", index)
  churn {
    interval = "1m"
  }
  churn {
    interval = "2m"
  }
}
