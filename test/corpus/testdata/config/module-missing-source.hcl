# A module without source.
# @expect error Missing required argument
module "m" {
}
