# A twin without target.
# @expect error target
twin "t" {
  desired = { a = 1 }
}
