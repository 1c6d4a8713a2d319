# A payload over 128 KB.
# @expect error Payload too large
method "m" {
  target = "deviceId = 'a'"
  method  = "ping"
  payload = { a = format("%133120s", "p") }
}
