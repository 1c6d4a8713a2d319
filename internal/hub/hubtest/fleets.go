package hubtest

// RolloutFleet is a fleet for rollout tests: 200 devices answering lockDoor, in device id order
// 20 that succeed (a-000 …), 30 that answer 500 (b-000 …) and 150 that succeed (c-000 …), all
// tagged site = "hq". Waves of 10%, 50% and 100% put the failing devices in wave 2.
const RolloutFleet = `
group "a" {
  count = 20
  id    = format("a-%03d", index)
  tags  = { site = "hq" }
  method "lockDoor" {
    status = 200
  }
}
group "b" {
  count = 30
  id    = format("b-%03d", index)
  tags  = { site = "hq" }
  method "lockDoor" {
    status = 500
  }
}
group "c" {
  count = 150
  id    = format("c-%03d", index)
  tags  = { site = "hq" }
  method "lockDoor" {
    status = 200
  }
}`
