# A broken expression.
# @expect error Invalid expression
device "a" {
  tags = { a = }
}
