// Package examples holds the user-facing example files, embedded so that the program ships
// exactly what users read and copy: fleet.hcl is the default fleet of a new local hub.
package examples

import _ "embed"

// Fleet is examples/fleet.hcl, the local hub's default fleet.
//
//go:embed fleet.hcl
var Fleet []byte
