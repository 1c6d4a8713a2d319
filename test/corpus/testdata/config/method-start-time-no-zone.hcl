# A start time without a zone.
# @expect error Invalid start time
method "m" {
  target = "deviceId = 'a'"
  method     = "ping"
  start_time = "2026-12-01T02:00:00"
}
