# The configuration the CI recipes of examples/ci plan and apply (and ci_test.go runs them
# with): the floor of every door controller, by building, on the default fleet of the local
# hub. Point CONFIG at your own configuration directory instead.
#
# The values of its variables are in iotplan.vars beside it, which plan and apply read by
# themselves: applying a saved plan reads the configuration again for its hub block, and
# then takes values from iotplan.vars, *.auto.vars and IOTPLAN_VAR_name, not from -var-file.

variable "floors" {
  type = map(number)
}

# hub {
#   tier  = "S1" # or IOTPLAN_HUB_TIER in the pipeline
#   units = 1
# }

twin "floor" {
  for_each = var.floors
  target   = "tags.kind = 'door-controller' AND tags.building = ${quote(each.key)}"
  desired  = { floor = each.value }
}
