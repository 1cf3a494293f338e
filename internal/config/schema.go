package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// schemaPatterns are the JSON Schema patterns of the text forms the loader accepts.
const (
	durationPattern      = `^(0|([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+$`
	bytesPattern         = `^[0-9]+ ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$`
	interpolationPattern = `\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}`
)

// obj is a JSON object that keeps its keys in insertion order.
type obj struct {
	keys []string
	vals map[string]any
}

func newObj() *obj { return &obj{vals: map[string]any{}} }

func (o *obj) set(k string, v any) *obj {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
	return o
}

// JSONSchema renders docs/config.schema.json, a JSON Schema (draft 2020-12) of one
// configuration file for editors, from the declarations in types.go and the registered sink
// kinds: descriptions, defaults, examples, allowed values and required keys; unknown keys are
// not allowed. Values that are not strings may also be written as ${VAR} references. Each
// section is described once under $defs, named after its Go type (qualified by its package
// for a sink kind's options, e.g. kafka.Config). The output is deterministic.
func JSONSchema() []byte {
	g := &schemaGen{defs: newObj()}
	root := g.object(rootSpec())
	out := newObj().
		set("$schema", "https://json-schema.org/draft/2020-12/schema").
		set("title", "Switchyard configuration").
		set("description", "One Switchyard configuration file (generated from internal/config/types.go and the sink packages' config structs; see docs/config.md).")
	for _, k := range root.keys {
		out.set(k, root.vals[k])
	}
	out.set("patternProperties", newObj().set("^"+extensionPrefix, newObj().
		set("description", "Ignored by Switchyard: a place for YAML anchors that pipelines merge in with <<.")))
	g.defs.set("interpolation", newObj().
		set("description", "A ${VAR} or ${VAR:-default} reference, replaced from the environment before the value is read.").
		set("type", "string").
		set("pattern", interpolationPattern))
	out.set("$defs", g.defs)
	var b bytes.Buffer
	writeJSON(&b, out, "")
	b.WriteByte('\n')
	return b.Bytes()
}

// defName names the definition of s under $defs: the Go type's name for the structs of this
// package, qualified by its package for the others (a sink kind's "kafka.Config").
func (s *structSpec) defName() string {
	if s.Type.PkgPath() == sinkType.PkgPath() {
		return s.Type.Name()
	}
	return s.Type.String()
}

// schemaGen collects the $defs while walking the declarations.
type schemaGen struct{ defs *obj }

// ref returns a reference to the definition of s, adding it on first use.
func (g *schemaGen) ref(s *structSpec) *obj {
	name := s.defName()
	if _, ok := g.defs.vals[name]; !ok {
		g.defs.set(name, nil) // reserve the slot so definitions appear in first-use order
		g.defs.set(name, g.object(s))
	}
	return newObj().set("$ref", "#/$defs/"+name)
}

// object is the schema of a struct.
func (g *schemaGen) object(s *structSpec) *obj {
	o := newObj().set("type", "object").set("additionalProperties", false)
	props := newObj()
	var required []any
	for _, f := range s.Fields {
		props.set(f.Name, g.property(f))
		if f.Required {
			required = append(required, f.Name)
		}
	}
	o.set("properties", props)
	if len(required) > 0 {
		o.set("required", required)
	}
	if s.Type == sinkType && len(s.kinds) > 0 {
		var one []any
		for _, k := range s.kinds {
			one = append(one, newObj().set("required", []any{k.Name}))
		}
		o.set("oneOf", one)
	}
	return o
}

// property is the schema of one field.
func (g *schemaGen) property(f *field) *obj {
	interp := newObj().set("$ref", "#/$defs/interpolation")
	var p *obj
	switch f.Kind {
	case kindString:
		p = newObj().set("type", "string")
		if f.Required {
			p.set("minLength", 1)
		}
		if f.Enum != nil {
			enum := make([]any, len(f.Enum))
			for i, v := range f.Enum {
				enum[i] = v
			}
			p = newObj().set("anyOf", []any{p.set("enum", enum), interp})
		}
	case kindBool:
		p = newObj().set("anyOf", []any{newObj().set("type", "boolean"), interp})
	case kindInt:
		p = newObj().set("anyOf", []any{newObj().set("type", "integer").set("minimum", 0), interp})
	case kindDuration:
		p = newObj().set("anyOf", []any{newObj().set("type", "string").set("pattern", durationPattern), interp})
	case kindBytes:
		p = newObj().set("anyOf", []any{
			newObj().set("type", "integer").set("minimum", 0),
			newObj().set("type", "string").set("pattern", bytesPattern),
			interp,
		})
	case kindText:
		p = newObj().set("anyOf", []any{newObj().set("type", "string"), interp})
		if f.Type == reflect.TypeFor[Ratio]() {
			p = newObj().set("anyOf", []any{newObj().set("type", "number").set("exclusiveMinimum", 0).set("maximum", 1), newObj().set("type", "string"), interp})
		}
	case kindStrings:
		p = newObj().set("type", "array").set("items", newObj().set("type", "string").set("minLength", 1))
		if f.Required {
			p.set("minItems", 1)
		}
	case kindInts:
		p = newObj().set("type", "array").set("items", newObj().set("type", "integer").set("minimum", 0))
		if f.Required {
			p.set("minItems", 1)
		}
	case kindStringMap:
		p = newObj().set("type", "object").set("additionalProperties", newObj().set("type", "string").set("minLength", 1))
		if f.Required {
			p.set("minProperties", 1)
		}
	case kindStruct:
		p = g.ref(f.Struct)
	case kindPtrStruct:
		p = newObj().set("anyOf", []any{g.ref(f.Struct), newObj().set("type", "null")})
	case kindStructs:
		p = newObj().set("type", "array").set("items", g.ref(f.Struct))
		if f.Required {
			p.set("minItems", 1)
		}
	}
	// Annotations go first so that editors and readers see them before the constraints.
	out := newObj()
	if f.Doc != "" {
		out.set("description", f.Doc)
	}
	if f.Default != "" {
		out.set("default", yamlValue(f.Default))
	}
	if f.Example != "" {
		out.set("examples", []any{yamlValue(f.Example)})
	}
	if f.Secret {
		out.set("writeOnly", true)
	}
	for _, k := range p.keys {
		out.set(k, p.vals[k])
	}
	return out
}

// yamlValue decodes a tag value written in YAML (a default or an example) to a JSON value.
func yamlValue(s string) any {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	return v
}

// writeJSON writes v indented by two spaces per level, without escaping HTML characters.
// v is built from *obj, map[string]any, []any, string, bool, int, float64 and nil.
func writeJSON(b *bytes.Buffer, v any, indent string) {
	inner := indent + "  "
	switch v := v.(type) {
	case *obj:
		if len(v.keys) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{\n")
		for i, k := range v.keys {
			b.WriteString(inner)
			writeString(b, k)
			b.WriteString(": ")
			writeJSON(b, v.vals[k], inner)
			if i < len(v.keys)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	case map[string]any:
		o := newObj()
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			o.set(k, v[k])
		}
		writeJSON(b, o, indent)
	case []any:
		if len(v) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, e := range v {
			b.WriteString(inner)
			writeJSON(b, e, inner)
			if i < len(v)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "]")
	case string:
		writeString(b, v)
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int:
		b.WriteString(strconv.Itoa(v))
	case float64:
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	case nil:
		b.WriteString("null")
	default:
		panic(fmt.Sprintf("config: cannot write %T as JSON", v))
	}
}

func writeString(b *bytes.Buffer, s string) {
	var sb bytes.Buffer
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b.Write(bytes.TrimSuffix(sb.Bytes(), []byte("\n")))
}
