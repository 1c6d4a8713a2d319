# A mode other than in_process and mqtt.
# @expect error Invalid mode
device "a" {
  mode = "bluetooth"
}
