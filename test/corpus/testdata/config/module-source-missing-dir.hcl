# A module whose directory does not exist.
# @expect error Module not found
module "m" {
  source = "./no/such/dir"
}
