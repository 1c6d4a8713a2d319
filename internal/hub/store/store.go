// Package store opens the local hub's database (<data>/hub.db, bbolt) with the options every
// part of the hub relies on, in one place: the hub itself and the tests and benchmarks that
// assemble its parts use the same store.
//
// Durability: every commit is fsynced (bbolt's default, NoSync false), so an acknowledged
// write survives a power loss as well as a killed process. The writers batch: the registry
// group-commits twin writes (internal/hub/registry/commit.go) and the jobs engine flushes its
// devices.jobs rows in batches, so a commit — and its fsync — is shared by many writes.
// Measured: a twin job over 100,000 in-process devices runs about 15% slower with the fsync
// than without (BENCHMARKS.md, "Lean twins"). Each package owns its buckets (see
// internal/hub's package doc).
package store

import (
	"time"

	"go.etcd.io/bbolt"
)

// lockTimeout is how long Open waits for another process's lock on the file before it
// returns bbolt.ErrTimeout (one hub per data directory).
const lockTimeout = time.Second

// Open opens (creating) the database at path, readable by its owner only: it holds the hub's
// keys.
func Open(path string) (*bbolt.DB, error) {
	return bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
}
