variable "cs" {
  type      = string
  sensitive = true
  default   = "HostName=h.azure-devices.net;DeviceId=door-1;SharedAccessKey=U0VDUkVULUtFWQ=="
}

hub { # ERROR: Invalid connection string
  connection_string = var.cs
}
