# A heredoc without its end marker.
# @expect error Unterminated template string
twin "t" {
  target = <<EOT
deviceId = 'a'
}
