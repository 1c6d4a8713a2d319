# A function given the wrong number of arguments.
# @expect error Too many function arguments
twin "t" {
  target  = upper("a", "b")
  desired = { a = 1 }
}
