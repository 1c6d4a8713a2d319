# A required variable with no value.
# @expect error No value for required variable
variable "site" {
  type = string
}
twin "t" {
  target  = "tags.site = ${quote(var.site)}"
  desired = { a = 1 }
}
