package deps

import (
	_ "github.com/amenzhinsky/iothub/iotdevice"
	_ "github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	_ "github.com/amenzhinsky/iothub/iotservice"
	_ "github.com/google/uuid"
	_ "github.com/hashicorp/hcl/v2"
	_ "github.com/hashicorp/hcl/v2/gohcl"
	_ "github.com/hashicorp/hcl/v2/hclparse"
	_ "github.com/hashicorp/hcl/v2/hclsyntax"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/spf13/cobra"
	_ "github.com/zclconf/go-cty/cty"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/term"
)
