// Package buftool finds the buf CLI that .ci/setup installs, for tests that run the real
// `buf lint`, `buf build` and `buf breaking`.
package buftool

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Version is the @bufbuild/buf npm package version .ci/setup installs.
const Version = "1.75.0"

// Path returns the buf binary to run: $SWITCHYARD_BUF when set, else the one .ci/setup
// installs under ~/.cache/switchyard/buf, else buf on PATH.
func Path() (string, error) {
	if p := os.Getenv("SWITCHYARD_BUF"); p != "" {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "switchyard", "buf", "node_modules", ".bin", "buf")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("buf"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("buf not found: run .ci/setup (it installs @bufbuild/buf@%s under ~/.cache/switchyard/buf) or set SWITCHYARD_BUF", Version)
}
