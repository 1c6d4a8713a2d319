twin "nested" {
target = "*"
}
