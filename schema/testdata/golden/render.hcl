# Rendered by TestWriteDiagnosticsGolden into render.txt and render.color.txt.
variable "site" {
  type    = string
  default = "é-site"
}

twin "door_location" {
  target  = "tags.lieu = 'été' AND deviceId IN ['a' 'b']"
  desired = { building = "43", "floor.number" = 3 }
}

twin "heredoc" {
  target = <<EOT
tags.site = 'x' AND
  (tags.kind = 'door'
EOT
  tags = { ok = true }
}

method "lock_door" {
	target           = "tags.site = ${quote(var.site)} AND"
	method           = "lock door"
	response_timeout = "1s"
}
