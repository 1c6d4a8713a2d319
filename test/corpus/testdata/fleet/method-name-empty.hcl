# An empty method name.
# @expect error Invalid method name
device "a" {
  method "" {
    status = 200
  }
}
