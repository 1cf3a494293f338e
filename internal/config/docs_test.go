package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/switchyard-dev/switchyard/internal/config"
	_ "github.com/switchyard-dev/switchyard/sinks/all"
)

// TestGeneratedDocsUpToDate fails when docs/config.md or docs/config.schema.json differ from
// what the declarations in types.go generate, so CI catches a forgotten regeneration.
func TestGeneratedDocsUpToDate(t *testing.T) {
	for name, want := range map[string][]byte{
		"config.md":          Markdown(),
		"config.schema.json": JSONSchema(),
	} {
		path := filepath.Join("..", "..", "docs", name)
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read docs/%s: %v; generate it with: go run ./internal/config/gen", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("docs/%s is out of date with internal/config/types.go; regenerate it from the repository root with:\n\tgo run ./internal/config/gen", name)
		}
	}
}

func TestMarkdown(t *testing.T) {
	md := string(Markdown())
	for _, want := range []string{
		"### `kafka.sasl`",
		"### `pipelines[].sinks[].batch`",
		"| `max_bytes` | size |  | `4MiB` |  | Most payload bytes in a batch. |",
		"| `level` | string |  | `info` | `debug`, `info`, `warn`, `error` | Minimum level. |",
		"| `mechanism` | string |  |  | `\"\"`, `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` |",
		"| `name` | string | yes |  |  | Unique pipeline name",
		"| `password` | string |  |  |  | SASL password. Secret: printed as `[redacted]`. |",
		"[`pipelines[].sinks[]`](#pipelinessinks)",
		"&lt;group&gt;.&lt;sink&gt;", // angle brackets in prose would be read as HTML
		"Example: `event.amount.units >= 100`.",
		string(Example()),
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	// Every key of every section is in a table row.
	var walk func(s *StructSpec)
	walk = func(s *StructSpec) {
		for _, f := range s.Fields {
			if !strings.Contains(md, "| `"+f.Name+"` | ") {
				t.Errorf("Markdown has no row for %s.%s", s.Type.Name(), f.GoName)
			}
			if f.Struct != nil {
				walk(f.Struct)
			}
		}
	}
	walk(RootSpec())
}

func TestJSONSchema(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(JSONSchema(), &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", schema["$schema"])
	}
	defs := schema["$defs"].(map[string]any)
	get := func(v any, keys ...string) any {
		for _, k := range keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	// Every object forbids unknown keys and describes every property.
	objects := []any{schema}
	for _, d := range defs {
		if get(d, "type") == "object" {
			objects = append(objects, d)
		}
	}
	for _, o := range objects {
		if get(o, "additionalProperties") != false {
			t.Errorf("object allows unknown keys: %v", get(o, "properties"))
		}
		for name, p := range get(o, "properties").(map[string]any) {
			if get(p, "description") == nil {
				t.Errorf("property %q has no description", name)
			}
		}
	}
	for _, tc := range []struct {
		keys []string
		want any
	}{
		{[]string{"Logging", "properties", "level", "default"}, "info"},
		{[]string{"Source", "properties", "max_in_flight", "default"}, 3500.0},
		{[]string{"Batch", "properties", "max_bytes", "default"}, "4MiB"},
		{[]string{"kafka.Config", "properties", "headers", "default"}, true},
		{[]string{"SASL", "properties", "password", "writeOnly"}, true},
		{[]string{"Kafka", "properties", "brokers", "minItems"}, 1.0},
		{[]string{"Pipeline", "properties", "name", "minLength"}, 1.0},
		{[]string{"Sink", "properties", "kafka", "anyOf"}, []any{map[string]any{"$ref": "#/$defs/kafka.Config"}, map[string]any{"type": "null"}}},
	} {
		got := get(defs, tc.keys...)
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(tc.want)
		if !bytes.Equal(gb, wb) {
			t.Errorf("$defs.%s = %s, want %s", strings.Join(tc.keys, "."), gb, wb)
		}
	}
	enum, _ := json.Marshal(get(defs, "Logging", "properties", "level", "anyOf"))
	if !strings.Contains(string(enum), `"enum":["debug","info","warn","error"]`) {
		t.Errorf("logging.level enum missing: %s", enum)
	}
	req, _ := json.Marshal(get(defs, "Pipeline", "required"))
	if string(req) != `["name","owner","source","contract","sinks","routes","dead_letter"]` {
		t.Errorf("Pipeline required = %s", req)
	}
	if get(defs, "Sink", "oneOf") == nil {
		t.Error("Sink does not require exactly one of kafka, clickhouse, bigquery")
	}
}
