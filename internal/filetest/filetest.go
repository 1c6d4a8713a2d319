// Package filetest writes file trees for tests: configurations with modules and variable
// files, fleet files. Imports: stdlib.
package filetest

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteTree writes files (slash-separated path → text) under a new temporary directory of t
// and returns the directory.
func WriteTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
