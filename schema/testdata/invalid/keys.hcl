twin "keys" {
  target = "*"
  desired = {
    "a.b"   = 1          # ERROR: Invalid key
    "$x"    = 1          # ERROR: Invalid key
    "a b"   = 1          # ERROR: Invalid key
    "tab\t" = 1          # ERROR: Invalid key
    ""      = 1          # ERROR: Invalid key
    nested  = { "x.y" = 1 } # ERROR: Invalid key
    empty   = {}         # ERROR: Empty object
    big     = 4503599627370496   # ERROR: Integer out of range
    small   = -4503599627370497  # ERROR: Integer out of range
    ok_min  = -4503599627370496
    huge    = 1e400      # ERROR: Number out of range
    long    = format("%4097s", "x") # ERROR: String value too long
    ok_long = format("%4096s", "x")
    dup     = 1
    dup     = 2          # ERROR: Duplicate key
  }
}

twin "depth" {
  target = "*"
  tags = {
    # tags is level 1, so the object under l10 is level 10: the deepest allowed.
    l2 = { l3 = { l4 = { l5 = { l6 = { l7 = { l8 = { l9 = { l10 = { leaf = "ok" } } } } } } } } }
    m2 = { m3 = { m4 = { m5 = { m6 = { m7 = { m8 = { m9 = { m10 = { m11 = { # ERROR: Nesting too deep
      leaf = "level 11" } } } } } } } } } }
  }
}

twin "wrong_type" {
  target  = "*"
  desired = "building=43" # ERROR: Incorrect attribute value type
}

variable "long_key" {
  default = format("%1025s", "k")
}

twin "long_key_from_variable" {
  target = "*"
  tags   = { (var.long_key) = 1 } # ERROR: Invalid key
}

twin "too_large" {
  target = "*"
  tags = { # ERROR: Twin section too large
    a = format("%4000s", "x")
    b = format("%4000s", "x")
    c = format("%4000s", "x")
  }
}
