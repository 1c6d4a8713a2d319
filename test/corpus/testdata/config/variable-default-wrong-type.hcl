# A default that does not convert to the type.
# @expect error Invalid default value for variable
variable "x" {
  type    = number
  default = "ten"
}
