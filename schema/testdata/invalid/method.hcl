method "names" {
  target = "*"
  method = "lock door" # ERROR: Invalid method name
}

method "name_slash" {
  target = "*"
  method = "a/b" # ERROR: Invalid method name
}

method "name_empty" {
  target = "*"
  method = "" # ERROR: Invalid method name
}

method "name_unicode" {
  target = "*"
  method = "verrouillé" # ERROR: Invalid method name
}

method "timeouts" {
  target           = "*"
  method           = "x"
  response_timeout = "4s"   # ERROR: Duration out of range
  connect_timeout  = "301s" # ERROR: Duration out of range
  max_execution    = "0s"   # ERROR: Duration out of range
}

method "timeout_forms" {
  target           = "*"
  method           = "x"
  response_timeout = 15      # ERROR: Invalid duration
  connect_timeout  = "1.5s"  # ERROR: Invalid duration
  max_execution    = "5 min" # ERROR: Invalid duration
}

method "timeout_bounds" {
  target           = "*"
  method           = "x"
  response_timeout = "301s" # ERROR: Duration out of range
  connect_timeout  = "-1s"  # ERROR: Duration out of range
  max_execution    = "1000000h" # ERROR: Duration out of range
}

method "start" {
  target     = "*"
  method     = "x"
  start_time = "2026-12-01 02:00" # ERROR: Invalid start time
}

method "payload" {
  target  = "*"
  method  = "x"
  payload = { a = 1, a = 2 } # ERROR: Duplicate key
}

method "payload_size" {
  target  = "*"
  method  = "x"
  payload = [for s in [1, 2, 3, 4, 5] : format("%30000s", "x")] # ERROR: Payload too large
}

method "payload_number" {
  target  = "*"
  method  = "x"
  payload = { n = 9007199254740993 } # ERROR: Integer out of range
}

method "missing_method" { # ERROR: Missing required argument
  target = "*"
}

method "triggers_size" {
  target   = "*"
  method   = "x"
  triggers = [for s in [1, 2, 3, 4, 5] : format("%30000s", "x")] # ERROR: Triggers too large
}

method "triggers_duplicate" {
  target   = "*"
  method   = "x"
  triggers = { rev = 1, rev = 2 } # ERROR: Duplicate key
}
