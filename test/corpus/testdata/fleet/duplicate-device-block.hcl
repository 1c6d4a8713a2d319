# The same device twice.
# @expect error Duplicate device id
device "a" {}
device "a" {}
