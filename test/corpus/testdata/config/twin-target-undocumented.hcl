# A target using IS_STRING, outside the documented query language.
# @expect error Invalid target query
twin "t" {
  target  = "IS_STRING(tags.a)"
  desired = { a = 1 }
}
