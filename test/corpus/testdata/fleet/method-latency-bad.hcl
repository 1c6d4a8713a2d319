# A latency that is not a duration.
# @expect error Invalid latency
device "a" {
  method "m" {
    status  = 200
    latency = "5 parsecs"
  }
}
