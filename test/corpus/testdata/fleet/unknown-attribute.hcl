# An attribute devices do not have.
# @expect error Unsupported argument
device "a" {
  colour = "red"
}
