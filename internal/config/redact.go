package config

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// redacted replaces the value of every non-empty secret field in echoed configuration.
const redacted = "[redacted]"

// Redacted renders the effective configuration (every field, defaults included) as YAML, in
// declaration order, with every non-empty field tagged secret:"true" replaced by
// "[redacted]". Sections that are not set (a sink's unused kafka, clickhouse or bigquery) are
// left out. The output loads back with Load, except that secrets are then literally
// "[redacted]". Use it whenever configuration is printed or logged.
func (c *Config) Redacted() ([]byte, error) {
	n := encodeStruct(reflect.ValueOf(c).Elem(), rootSpec())
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encode redacted config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode redacted config: %w", err)
	}
	return buf.Bytes(), nil
}

func encodeStruct(v reflect.Value, s *structSpec) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, f := range s.Fields {
		if f.sink != nil {
			for _, sec := range v.Addr().Interface().(*Sink).sections() {
				if sec.kind == f.sink {
					n.Content = append(n.Content, scalar("!!str", f.Name), encodeValue(reflect.ValueOf(sec.opts), f))
				}
			}
			continue
		}
		fv := v.Field(f.Index)
		if f.Kind == kindPtrStruct && fv.IsNil() {
			continue
		}
		n.Content = append(n.Content, scalar("!!str", f.Name), encodeValue(fv, f))
	}
	return n
}

func encodeValue(v reflect.Value, f *field) *yaml.Node {
	switch f.Kind {
	case kindString:
		if f.Secret && v.String() != "" {
			return scalar("!!str", redacted)
		}
		return scalar("!!str", v.String())
	case kindBool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	case kindInt:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case kindDuration:
		return scalar("!!str", time.Duration(v.Int()).String())
	case kindBytes:
		if s := Bytes(v.Int()).String(); s != strconv.FormatInt(v.Int(), 10) {
			return scalar("!!str", s)
		}
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case kindText:
		text, _ := v.Interface().(encoding.TextMarshaler).MarshalText()
		return scalar("!!str", string(text))
	case kindStrings:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			n.Content = append(n.Content, scalar("!!str", v.Index(i).String()))
		}
		return n
	case kindInts:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for i := range v.Len() {
			n.Content = append(n.Content, scalar("!!int", strconv.FormatInt(v.Index(i).Int(), 10)))
		}
		return n
	case kindStringMap:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		for _, k := range keys {
			n.Content = append(n.Content, scalar("!!str", k), scalar("!!str", v.MapIndex(reflect.ValueOf(k)).String()))
		}
		return n
	case kindStruct:
		return encodeStruct(v, f.Struct)
	case kindPtrStruct:
		return encodeStruct(v.Elem(), f.Struct)
	case kindStructs:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			n.Content = append(n.Content, encodeStruct(v.Index(i), f.Struct))
		}
		return n
	}
	panic(fmt.Sprintf("config: cannot encode %s", f.Name))
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}
