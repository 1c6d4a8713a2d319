# JSON pasted into an HCL fleet file.
# @expect error Argument or block definition required
{"device": {"a": {}}}
