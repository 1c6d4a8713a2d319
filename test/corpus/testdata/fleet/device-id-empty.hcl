# An empty device id.
# @expect error Invalid device id
device "" {}
