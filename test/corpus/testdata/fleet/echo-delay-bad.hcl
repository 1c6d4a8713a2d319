# A reported_echo_delay that is not a duration.
# @expect error Invalid reported_echo_delay
device "a" {
  reported_echo_delay = "soon"
}
