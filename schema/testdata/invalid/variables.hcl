# VAR: number=forty-three
# VAR: list=[1, 2
# VAR: nope=1
# GLOBAL-ERROR: Value for undeclared variable

variable "required" { # ERROR: No value for required variable
  type = string
}

variable "number" { # ERROR: Invalid value for variable
  type = number
}

variable "list" { # ERROR: Invalid value for variable
  type = list(number)
}

variable "bad_default" {
  type    = number
  default = "abc" # ERROR: Invalid default value for variable
}

variable "bad_type" {
  type = strin # ERROR: Invalid type specification
}

variable "bad_sensitive" {
  sensitive = "very" # ERROR: Incorrect attribute value type
  default   = 1
}

variable "bad_name!" { # ERROR: Invalid variable name
  default = 1
}

twin "uses_broken_variables" {
  target = "tags.n = ${quote(var.number)}"
  tags   = { l = var.list, r = var.required }
}
