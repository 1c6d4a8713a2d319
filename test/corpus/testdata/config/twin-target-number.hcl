# A target that is a number.
# @expect error Incorrect attribute value type
twin "t" {
  target  = 42
  desired = { a = 1 }
}
