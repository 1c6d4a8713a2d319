# Every block and attribute of language v0, with -var values given below.
# VAR: site=berlin-1
# VAR: floors={ "43" = 3, "44" = 7 }

hub {
  connection_string = var.hub_connection_string
  tier              = "S1"
  units             = 2
}

variable "hub_connection_string" {
  type        = string
  sensitive   = true
  default     = "HostName=example.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"
  description = "Service connection string."
}

variable "site" {
  type = string
}

variable "building" {
  type    = string
  default = "43"
}

variable "floors" {
  type = map(number)
}

variable "untyped" {
  default = 12
}

variable "ring" {
  type    = list(string)
  default = ["canary", "early"]
}

locals {
  doors = "tags.kind = 'door-controller'"
  # locals may refer to each other in any order
  target = "${local.doors} AND tags.site = ${quote(var.site)}"
  owner  = upper("facilities")
}

twin "door_location" {
  target = local.target
  desired = {
    building = var.building
    floor    = var.floors[var.building]
    location = {
      wing = "east"
      room = null # ensure absent
    }
    schedule = [8, 18]
    enabled  = true
    ratio    = 0.25
    big      = 4503599627370495
  }
  tags = {
    owner = local.owner
    ring  = var.ring
  }
}

twin "tags_only" {
  target = "deviceId IN ${quote(["door-1", "door-2"])} OR tags.floor = ${quote(var.floors["44"])}"
  tags   = { "ünïcode-key" = "ok", "with-dash_and_underscore" = "ok" }

  max_execution = "30h"
  start_time    = "2026-12-01T02:00:00Z"

  lifecycle {
    keep_on_removal = true
  }
}

method "lock_door" {
  target           = twin.door_location.target
  method           = "lockDoor"
  payload          = { reason = "maintenance", level = 2, tags = ["a", "b"], nothing = null, "$ok-in-payload" = true }
  response_timeout = "15s"
  connect_timeout  = "1m"
  max_execution    = "1h30m"
  start_time       = "2026-12-01T03:00:00+01:00"
  triggers         = { firmware = var.site, revision = 2 }
}

method "all_defaults" {
  target = "*"
  method = "ping"
}

method "string_payload" {
  target           = "deviceId = 'x'"
  method           = "say-hello_v2.1"
  payload          = "hello"
  response_timeout = "300s"
  connect_timeout  = null
  start_time       = null
}
