# The default fleet of `iotplan dev`: what a new local hub starts with when no --fleet is given.
# Copy this file, edit it, and pass it with `iotplan dev --fleet FILE`.
#
# 301 simulated devices:
#   - myDeviceId, the tutorial's device (simDevice.js): answers lockDoor with 200.
#   - 300 door controllers, door-00000 … door-00299, in buildings 41, 42 and 43. Most are in
#     line with their tags; some have drifted: a stale desired building, a floor written as the
#     string "3" instead of the number 3, or no floor at all. A few never connect and a few
#     answer lockDoor with an error, so plans and method jobs show realistic failures.
#
# Every device echoes desired properties into reported ones after reported_echo_delay, as a
# well-behaved device does.

# The tutorial's device: no tags, no desired properties yet (examples/lockdoor.hcl sets
# building = "43" and floor = 3 on it).
device "myDeviceId" {
  method "lockDoor" {
    status = 200
  }
}

# 240 door controllers in line with their tags: desired building = the building tag,
# floor a number from 1 to 5.
group "doors" {
  count = 240
  id    = "door-%05d"
  tags = {
    kind     = "door-controller"
    building = element(["41", "42", "43"], index)
  }
  desired = {
    building = element(["41", "42", "43"], index)
    floor    = index % 5 + 1
  }
  reported = {
    firmware = "1.4.2"
    building = element(["41", "42", "43"], index)
    floor    = index % 5 + 1
  }
  offline_fraction    = 0.02 # 5 devices never connect
  reported_echo_delay = "500ms"

  method "lockDoor" {
    status           = 200
    payload          = { locked = true }
    latency          = "20ms..80ms"
    failure_fraction = 0.02 # 5 devices answer 500
    failure_status   = 500
    failure_payload  = { error = "door jammed" }
  }
  method "unlockDoor" {
    status  = 200
    payload = { locked = false }
    latency = "20ms..80ms"
  }
}

# 30 controllers moved to building 43 whose desired building still says "42".
group "doors-stale-building" {
  count = 30
  id    = format("door-%05d", 240 + index)
  tags = {
    kind     = "door-controller"
    building = "43"
  }
  desired = {
    building = "42"
    floor    = 3
  }
  reported = {
    firmware = "1.4.2"
    building = "42"
    floor    = 3
  }
  offline_fraction = 0.04 # 1 device never connects

  method "lockDoor" {
    status  = 200
    payload = { locked = true }
    latency = "20ms..80ms"
  }
}

# 20 controllers in building 41 whose floor was written as the string "3".
group "doors-string-floor" {
  count = 20
  id    = format("door-%05d", 270 + index)
  tags = {
    kind     = "door-controller"
    building = "41"
  }
  desired = {
    building = "41"
    floor    = "3"
  }
  reported = {
    firmware = "1.3.0"
    building = "41"
    floor    = "3"
  }

  method "lockDoor" {
    status           = 200
    payload          = { locked = true }
    latency          = "20ms..80ms"
    failure_fraction = 0.05 # 1 device answers 500
    failure_status   = 500
    failure_payload  = { error = "door jammed" }
  }
}

# 10 controllers in building 42 that never had a floor.
group "doors-no-floor" {
  count = 10
  id    = format("door-%05d", 290 + index)
  tags = {
    kind     = "door-controller"
    building = "42"
  }
  desired = {
    building = "42"
  }
  reported = {
    firmware = "1.3.0"
    building = "42"
  }

  method "lockDoor" {
    status  = 200
    payload = { locked = true }
    latency = "20ms..80ms"
  }
}
