# A block type iotplan does not have.
# @expect error Unsupported block type
resource "twin" "t" {
  target = "deviceId = 'a'"
}
