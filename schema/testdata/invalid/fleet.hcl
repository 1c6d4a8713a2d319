# A fleet file of the local hub, passed as configuration by mistake.
device "myDeviceId" { # ERROR: Fleet file given as configuration
  tags = { kind = "door-controller" }
}

group "doors" {
  count = 3
}
