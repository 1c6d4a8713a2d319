# A response timeout in words.
# @expect error Invalid duration
method "m" {
  target = "deviceId = 'a'"
  method           = "ping"
  response_timeout = "half a minute"
}
