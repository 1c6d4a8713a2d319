# Unformatted on purpose: fmt_test.go formats it and compares with ../main.hcl.golden.
variable "site" {
type = string
    default = "ams"
}

twin "door_location" {
  target = "tags.kind = 'door-controller' AND tags.site = ${quote(var.site)}"
  desired = { building = "43", floor=3 }
  tags = {
    owner = "facilities"
    legacy         = null
  }
}


method "lock_door" {
	target = twin.door_location.target
	method = "lockDoor"
	response_timeout = "15s"
	payload          = { reason = "maintenance" }
}
