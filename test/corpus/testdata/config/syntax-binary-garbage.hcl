# Bytes that are not HCL.
# @expect error Invalid character
 twin {{{{
