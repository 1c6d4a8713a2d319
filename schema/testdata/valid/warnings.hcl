hub { # WARNING: Connection string written in the configuration
  connection_string = "HostName=h.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5"
}

twin "empty_desired" {
  target  = "*"
  desired = {} # WARNING: Empty desired
  tags    = { a = 1 }
}

twin "null_desired_means_unmanaged" {
  target  = "*"
  desired = null
  tags    = { a = 2 }
}
