# A space in a device id.
# @expect error Invalid device id
device "a b" {}
