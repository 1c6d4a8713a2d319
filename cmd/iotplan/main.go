// Command iotplan plans and applies declarative device-twin state and direct-method runs on
// Azure IoT Hub fleets, and runs a local IoT Hub for development. All behaviour lives in
// internal/cli so that it can be tested without a process boundary.
package main

import (
	"os"

	"github.com/iotplan/iotplan/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.SystemStreams()))
}
