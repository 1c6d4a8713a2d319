# A top-level attribute.
# @expect error Unsupported argument
devices = 5
