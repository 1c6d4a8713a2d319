# An unclosed block.
# @expect error Unclosed
device "a" {
  offline = true
