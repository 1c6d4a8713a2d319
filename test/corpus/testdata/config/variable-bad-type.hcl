# A type constraint that is no type.
# @expect error Invalid type specification
variable "x" {
  type = strin
}
