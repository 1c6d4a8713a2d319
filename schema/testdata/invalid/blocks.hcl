resource "x" "y" { # ERROR: Unsupported block type
}

twin "unsupported" {
  target   = "*"
  desired  = { a = 1 }
  depends_on = [] # ERROR: Unsupported argument
}

twin "nothing" { # ERROR: Twin manages nothing
  target = "*"
}

twin "nothing_null" { # ERROR: Twin manages nothing
  target = "*"
  tags   = null
}

twin "bad name" { # ERROR: Invalid twin name
  target = "*"
  tags   = { a = 1 }
}

twin "dup" {
  target = "*"
  tags   = { a = 1 }
}

twin "dup" { # ERROR: Duplicate twin block
  target = "*"
  tags   = { a = 2 }
}

method "dup" {
  target = "*"
  method = "x"
}

method "dup" { # ERROR: Duplicate method block
  target = "*"
  method = "x"
}

variable "dup" {
  default = 1
}

variable "dup" { # ERROR: Duplicate variable block
  default = 2
}

locals {
  l = 1
}

locals {
  l = 2 # ERROR: Duplicate local value definition
}

hub {
  connection_string = var.cs
}

hub { # ERROR: Duplicate hub block
  connection_string = var.cs
}

variable "cs" {
  default = "HostName=h;SharedAccessKeyName=p;SharedAccessKey=a2V5"
}

twin "no_target" { # ERROR: Missing required argument
  tags = { a = 1 }
}

# Two independent problems in one block are both reported.
twin "two_problems" { # ERROR: Twin manages nothing
  target = "(" # ERROR: Invalid target query
}

twin "lifecycle_type" {
  target = "*"
  tags   = { a = 1 }
  lifecycle {
    keep_on_removal = "sometimes" # ERROR: Incorrect attribute value type
  }
}

twin "lifecycle_twice" {
  target = "*"
  tags   = { a = 1 }
  lifecycle {
    keep_on_removal = true
  }
  lifecycle { # ERROR: Duplicate lifecycle block
  }
}

twin "lifecycle_unknown" {
  target = "*"
  tags   = { a = 1 }
  lifecycle {
    prevent_destroy = true # ERROR: Unsupported argument
  }
}
