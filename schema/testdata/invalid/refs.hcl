variable "v" {
  default = var.other # ERROR: Variables not allowed
}

locals {
  a    = local.b # ERROR: Cycle in local values
  b    = local.a
  c    = "${local.a}-derived"
  self = local.self # ERROR: Cycle in local values
  d    = var.nope # ERROR: Reference to undeclared variable
  e    = local.nope # ERROR: Reference to undeclared local value
  f    = twin.t.target # ERROR: Invalid reference
  g    = foo.bar # ERROR: Invalid reference
}

twin "t" {
  target = "*"
  tags = {
    a = local.c
    b = twin.t.target # ERROR: Invalid reference
  }
}

method "m" {
  target  = twin.nope.target # ERROR: Reference to undeclared twin
  method  = "x"
  payload = twin.t.desired # ERROR: Unsupported attribute
}

method "m2" {
  target = method.m.target # ERROR: Invalid reference
  method = "x"
}
