# The "schedule jobs" tutorial, declaratively.
#
#   go run ./cmd/iotplan plan  -dev examples/lockdoor.hcl
#   go run ./cmd/iotplan apply -dev -auto-approve examples/lockdoor.hcl
#
# The hub is IOTHUB_CONNECTION_STRING (or the built-in local hub with -dev).

# Desired twin properties for every device the target query selects.
# Only the keys written here are managed; others on the device are left alone.
# Values are typed: "43" (a string) and 43 (a number) differ on the hub.
twin "door_location" {
  target = "deviceId IN ['myDeviceId']"

  desired = {
    building = "43"
    floor    = 3
  }
}

# The direct method lockDoor, invoked on the same devices as one hub job.
method "lock_door" {
  target           = twin.door_location.target
  method           = "lockDoor"
  payload          = null  # the tutorial sends no payload
  response_timeout = "15s" # per device; the hub allows 5s..300s
  max_execution    = "5m"  # the whole job; the tutorial's 300 seconds
}
