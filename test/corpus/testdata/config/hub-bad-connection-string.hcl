# A hub block with a broken connection string.
# @expect error Invalid connection string
hub {
  connection_string = "HostName=h;SharedAccessKey=not*base64"
}
