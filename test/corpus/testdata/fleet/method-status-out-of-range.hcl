# A status no HTTP-like status can be.
# @expect error Invalid number
device "a" {
  method "m" {
    status = 99999
  }
}
