// Command gen writes docs/config.md and docs/config.schema.json from the declarations in
// internal/config/types.go and the config structs of the sink kinds that sinks/all
// registers. Run it from the repository root after changing them:
//
//	go run ./internal/config/gen
//
// TestGeneratedDocsUpToDate fails while the checked-in files differ from its output.
package main

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/switchyard-dev/switchyard/internal/config"
	_ "github.com/switchyard-dev/switchyard/sinks/all" // the sink kinds, whose sections the docs describe
)

func main() {
	dir := flag.String("dir", "docs", "directory to write config.md and config.schema.json into")
	flag.Parse()
	files := map[string][]byte{
		"config.md":          config.Markdown(),
		"config.schema.json": config.JSONSchema(),
	}
	for name, data := range files {
		path := filepath.Join(*dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			slog.Error("write generated file failed", "path", path, "err", err)
			os.Exit(1)
		}
		slog.Info("wrote generated file", "path", path)
	}
}
