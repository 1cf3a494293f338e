package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
	"unicode"
)

//go:embed example.yaml
var example []byte

// Example returns a complete, valid configuration; docs/config.md shows it and tests load it
// (with CLICKHOUSE_PASSWORD set).
func Example() []byte { return bytes.Clone(example) }

// Markdown renders the configuration reference, docs/config.md, from the declarations in
// types.go and the registered sink kinds (RegisterSinkKind): every key with its type, whether it is required, its default, its allowed values
// and its description, one table per section. The output is deterministic.
func Markdown() []byte {
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

<!-- Generated from internal/config/types.go and the sink packages' config structs by "go run ./internal/config/gen". DO NOT EDIT. -->

Switchyard reads one YAML file, or every ` + "`*.yaml`" + ` and ` + "`*.yml`" + ` file directly in a directory
(in name order). In a directory, each global section (` + "`kafka`, `contracts`, `admin`, `logging`" + `)
may be written in only one file, and the ` + "`pipelines`" + ` lists of all files are joined.

- Unknown keys are errors. All problems are reported at once, each as ` + "`file:line:col: message`" + `.
- ` + "`${VAR}`" + ` in any value is replaced by the environment variable VAR before the value is read;
  ` + "`${VAR:-default}`" + ` gives a fallback for when VAR is unset or empty. A variable that is not set
  and has no fallback is an error. Write ` + "`$${`" + ` for a literal ` + "`${`" + `. A value that becomes empty
  counts as not written, so the key takes its default.
- Keys that are not written take their defaults. Required keys must be present and not empty.
- YAML anchors, aliases and ` + "`<<`" + ` merge keys work. Top-level keys starting with ` + "`x-`" + ` are ignored, so
  they can hold anchors, e.g. ` + "`x-sink-defaults: &fast {batch: {max_rows: 10000}}`" + `, merged into
  sinks with ` + "`<<: *fast`" + `.
- Secret keys are printed as ` + "`[redacted]`" + ` whenever the configuration is echoed. Keys ending in
  ` + "`_file`" + ` name files that are read at start-up instead.
- Editors can validate against the JSON Schema in [config.schema.json](config.schema.json).

| Type | Written as |
|---|---|
| string | any scalar |
| integer | a whole number, 0 or more |
| boolean | ` + "`true` or `false`" + ` |
| duration | a Go duration: ` + "`250ms`, `5s`, `1m30s`" + ` |
| size | a number of bytes, or a number with a unit: ` + "`512KB`, `4MiB`, `1048576`" + ` (KB, MB, GB, TB = 1000^n; KiB, MiB, GiB, TiB = 1024^n) |

## Example

` + "```yaml\n")
	b.Write(example)
	b.WriteString("```\n\n## Reference\n")
	markdownSection(&b, "Top level", "", rootSpec())
	return b.Bytes()
}

// markdownSection writes one section's table, then the sections of its nested objects.
func markdownSection(b *bytes.Buffer, title, path string, s *structSpec) {
	fmt.Fprintf(b, "\n### %s\n\n", title)
	b.WriteString("| Key | Type | Required | Default | Allowed values | Description |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	type sub struct {
		path string
		s    *structSpec
	}
	var subs []sub
	for _, f := range s.Fields {
		fp := join(path, f.Name)
		typ := f.typeName()
		switch f.Kind {
		case kindStruct:
			typ = fmt.Sprintf("object, see %s", mdLink(fp))
			subs = append(subs, sub{fp, f.Struct})
		case kindPtrStruct:
			typ = fmt.Sprintf("object, see %s", mdLink(fp))
			subs = append(subs, sub{fp, f.Struct})
		case kindStructs:
			fp += "[]"
			typ = fmt.Sprintf("list of objects, see %s", mdLink(fp))
			subs = append(subs, sub{fp, f.Struct})
		}
		required := ""
		if f.Required {
			required = "yes"
		}
		def := ""
		if f.Default != "" {
			def = mdCode(f.Default)
		}
		var allowed []string
		for _, v := range f.Enum {
			if v == "" {
				v = `""`
			}
			allowed = append(allowed, mdCode(v))
		}
		desc := mdCell(f.Doc)
		if f.Kind == kindPtrStruct {
			desc += " Optional: leave the key out to not use it."
		}
		if f.Secret {
			desc += " Secret: printed as `[redacted]`."
		}
		if f.Example != "" {
			desc += " Example: " + mdCode(f.Example) + "."
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s | %s |\n",
			f.Name, typ, required, def, strings.Join(allowed, ", "), desc)
	}
	for _, sub := range subs {
		markdownSection(b, "`"+sub.path+"`", sub.path, sub.s)
	}
}

// mdLink links to the section about path, using GitHub's heading anchors.
func mdLink(path string) string {
	anchor := strings.Map(func(r rune) rune {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-':
			return unicode.ToLower(r)
		case r == ' ':
			return '-'
		}
		return -1
	}, path)
	return fmt.Sprintf("[`%s`](#%s)", path, anchor)
}

// mdCode writes s as code in a table cell.
func mdCode(s string) string { return "`" + strings.ReplaceAll(s, "|", `\|`) + "`" }

// mdCell escapes prose for a table cell: pipes end the cell and angle brackets start HTML.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}
