# A reference to an undefined local.
# @expect error Reference to undeclared local value
twin "t" {
  target  = local.nope
  desired = { a = 1 }
}
