# A staged rollout with convergence, on the default fleet of `iotplan dev` (examples/fleet.hcl):
# a new firmware channel for the 300 door controllers, in three waves, each waiting until the
# devices report the new value before the next starts; then lockDoor, in two waves, stopping
# if more than 10% of a wave fails.
#
#   go run ./cmd/iotplan plan  -dev examples/rollout.hcl
#   go run ./cmd/iotplan apply -dev -auto-approve examples/rollout.hcl

twin "firmware_channel" {
  target  = "tags.kind = 'door-controller'"
  desired = { channel = "stable-2026-12" }

  rollout {
    waves             = ["5%", "25%", "100%"] # cumulative shares of the devices that change
    max_failure_ratio = 0.05                  # stop when more than 5% of a wave fails
    pause             = "2s"                  # between waves
  }

  converge {
    reported  = true  # wait until properties.reported.channel = "stable-2026-12"
    timeout   = "2m"
    min_ratio = 0.95  # of the targeted devices up to the wave's bound
  }
}

method "lock_doors" {
  target           = "tags.kind = 'door-controller'"
  method           = "lockDoor"
  response_timeout = "10s"
  triggers         = { channel = "stable-2026-12" } # once per device

  rollout {
    waves             = ["10%", "100%"]
    max_failure_ratio = 0.1
  }
}
