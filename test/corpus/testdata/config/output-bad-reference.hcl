# An output referring to a twin that does not exist.
# @expect error Reference to undeclared twin
output "o" {
  value = twin.nope.devices
}
