variable "site" {
  type    = string
  default = "berlin"
}

locals {
  broken = "tags.x = "
}

twin "syntax" {
  target  = "deviceId IN ['a' 'b']" # ERROR: Invalid target query
  desired = { a = 1 }
}

twin "end_of_input" {
  target  = "tags.site = 'x' AND" # ERROR: Invalid target query
  desired = { a = 1 }
}

twin "interpolated" {
  target  = "tags.site = ${quote(var.site)} AND (" # ERROR: Invalid target query
  desired = { a = 1 }
}

twin "via_local" {
  target  = local.broken # ERROR: Invalid target query
  desired = { a = 1 }
}

twin "empty" {
  target  = "  " # ERROR: Empty target
  desired = { a = 1 }
}

twin "null" {
  target  = null # ERROR: Missing target
  desired = { a = 1 }
}

twin "not_a_string" {
  target  = ["deviceId = 'a'"] # ERROR: Incorrect attribute value type
  desired = { a = 1 }
}

# A method that targets a broken twin is not reported a second time.
method "follows_broken_twin" {
  target = twin.syntax.target
  method = "lockDoor"
}

# Checks beyond the grammar, located the same way.
twin "arity" {
  target = "IS_DEFINED(tags.x, 1)" # ERROR: Invalid target query
  tags   = { a = 1 }
}

twin "aggregate" {
  target = "COUNT() = 1" # ERROR: Invalid target query
  tags   = { a = 1 }
}

twin "number" {
  target = 5 # ERROR: Incorrect attribute value type
  tags   = { a = 1 }
}

variable "many" {
  type    = list(string)
  default = []
}

twin "too_long" {
  target = "deviceId IN ${quote(concat(var.many, [format("%9000s", "x")]))}" # ERROR: Invalid target query
  tags   = { a = 1 }
}
