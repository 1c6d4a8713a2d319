# offline as a string that is no bool.
# @expect error Incorrect attribute value type
device "a" {
  offline = "maybe"
}
