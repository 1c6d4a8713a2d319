# A method status that is not a number.
# @expect error Incorrect attribute value type
device "a" {
  method "m" {
    status = "ok"
  }
}
