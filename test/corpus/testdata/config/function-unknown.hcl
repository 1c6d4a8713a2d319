# A function iotplan does not have.
# @expect error Call to unknown function
twin "t" {
  target  = launch_missiles()
  desired = { a = 1 }
}
