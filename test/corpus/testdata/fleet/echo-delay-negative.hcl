# A negative reported_echo_delay.
# @expect error Invalid reported_echo_delay
device "a" {
  reported_echo_delay = "-5s"
}
