# A target that does not parse.
# @expect error Invalid target query
twin "t" {
  target  = "tags.a = = 1"
  desired = { a = 1 }
}
