# Two locals that refer to each other.
# @expect error Cycle in local values
locals {
  a = local.b
  b = local.a
}
twin "t" {
  target  = local.a
  desired = { a = 1 }
}
