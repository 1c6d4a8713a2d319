# The default fleet of `iotplan dev` (examples/fleet.hcl), managed per building with for_each,
# a module per site, a variable file and outputs.
#
#   go run ./cmd/iotplan plan  -dev -var-file examples/buildings/prod.vars examples/buildings
#   go run ./cmd/iotplan apply -dev -var-file examples/buildings/prod.vars examples/buildings
#   go run ./cmd/iotplan plan  -dev -var-file examples/buildings/prod.vars -target 'twin.floor["43"]' examples/buildings

variable "floors" {
  type        = map(number)
  description = "The floor every door controller of a building is on, by building tag."

  validation {
    condition     = alltrue([for f in values(var.floors) : f >= 0 && f < 100 && floor(f) == f])
    error_message = "Floors are whole numbers from 0 to 99."
  }
}

variable "firmware_owner" {
  type    = string
  default = "facilities"
}

locals {
  doors = "tags.kind = 'door-controller'"
}

# One twin resource per building: twin.floor["41"], twin.floor["42"], twin.floor["43"].
twin "floor" {
  for_each = var.floors
  target   = "${local.doors} AND tags.building = ${quote(each.key)}"
  desired  = { floor = each.value }
}

# The same owner tag on every door of the buildings above, through a module.
module "site" {
  source    = "./modules/door-site"
  buildings = keys(var.floors)
  owner     = var.firmware_owner
}

output "doors_changing" {
  description = "Door controllers whose floor this plan changes."
  value       = sum([for t in twin.floor : t.devices])
}

output "site_target" {
  value = module.site.target
}
