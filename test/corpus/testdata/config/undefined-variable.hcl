# A reference to a variable that is not declared.
# @expect error Reference to undeclared variable
twin "t" {
  target  = var.nope
  desired = { a = 1 }
}
