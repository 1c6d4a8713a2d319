# More MQTT-mode devices than the hub allows.
# @expect error Too many MQTT devices
group "g" {
  count = 20001
  mode  = "mqtt"
  id    = format("g-%d", index)
}
