# A block type the fleet language does not have.
# @expect error Unsupported block type
robot "r1" {}
