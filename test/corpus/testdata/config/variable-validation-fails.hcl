# A value its validation refuses.
# @expect error must be short
# @var site=much-too-long
variable "site" {
  type = string
  validation {
    condition     = length(var.site) < 3
    error_message = "The site must be short."
  }
}
twin "t" {
  target  = "tags.site = ${quote(var.site)}"
  desired = { a = 1 }
}
