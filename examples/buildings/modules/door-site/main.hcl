# A module: the door controllers of some buildings get an owner tag.

variable "buildings" {
  type = list(string)
}

variable "owner" {
  type     = string
  nullable = false
}

twin "owner" {
  target = "tags.kind = 'door-controller' AND tags.building IN ${quote(var.buildings)}"
  tags   = { owner = var.owner }
}

output "target" {
  value = twin.owner.target
}
