# A negative latency.
# @expect error Invalid latency
device "a" {
  method "m" {
    status  = 200
    latency = "-1s"
  }
}
