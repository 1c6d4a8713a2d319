package jobs

import (
	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/registry"
)

// codeName names a hub error code in a devices.jobs row's error.code: huberr's names, plus
// the codes the registry defines until huberr names them (403100 for a twin patch that
// would exceed the twin's size limits).
func codeName(c huberr.Code) string {
	if n, ok := registry.CodeNames[c]; ok {
		return n
	}
	return c.Name()
}
