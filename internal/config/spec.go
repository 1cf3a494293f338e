package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// kind is how a field is written in YAML; every field of the config structs has one.
type kind int

const (
	kindString    kind = iota // string
	kindBool                  // bool
	kindInt                   // int (non-negative)
	kindDuration              // time.Duration, written as a Go duration
	kindBytes                 // Bytes, written as an integer or with a unit
	kindStrings               // []string
	kindInts                  // []int (non-negative)
	kindStringMap             // map[string]string
	kindStruct                // a nested struct
	kindPtrStruct             // *struct: nil unless the key is present
	kindStructs               // []struct
	kindText                  // a scalar type with its own syntax (encoding.TextUnmarshaler: Percent, Period, Ratio)
)

// field is one YAML key of a struct, as declared by its Go field and tags.
type field struct {
	Name     string // YAML key
	GoName   string // Go field name, for messages about the declaration itself
	Index    int    // reflect field index
	Kind     kind
	Type     reflect.Type
	Doc      string
	Default  string // the default tag, as written (YAML)
	Example  string
	Required bool
	Secret   bool
	Enum     []string      // allowed values; nil when any value is allowed
	Struct   *structSpec   // for kindStruct, kindPtrStruct and kindStructs: the element struct
	def      reflect.Value // parsed Default; invalid when there is none
	// sink is set on the kind sections of Sink, which have no Go field (Index is -1): Type
	// is the pointer type of the kind's options, decoded into Sink.Options.
	sink *SinkKind
}

// structSpec is the parsed declaration of one config struct.
type structSpec struct {
	Type   reflect.Type
	Fields []*field
	byName map[string]*field
	names  []string    // YAML keys in declaration order, for suggestions
	kinds  []*SinkKind // for Sink: the registered kinds, whose sections follow its own keys
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	bytesType    = reflect.TypeFor[Bytes]()
	textType     = reflect.TypeFor[encoding.TextUnmarshaler]()
	specs        sync.Map // reflect.Type -> *structSpec
)

// rootSpec is the declaration of Config.
func rootSpec() *structSpec { return specOf(reflect.TypeFor[Config]()) }

// specOf returns the parsed declaration of struct type t, building and caching it on first
// use. It panics on a declaration the loader cannot handle (an unsupported field type or a
// default tag that does not decode); TestSpec builds every spec so such mistakes fail tests.
func specOf(t reflect.Type) *structSpec {
	if s, ok := specs.Load(t); ok {
		return s.(*structSpec)
	}
	s := &structSpec{Type: t, byName: map[string]*field{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" || !sf.IsExported() {
			continue
		}
		if name == "" {
			panic(fmt.Sprintf("config: %s.%s has no yaml tag", t.Name(), sf.Name))
		}
		f := &field{
			Name:     name,
			GoName:   sf.Name,
			Index:    i,
			Type:     sf.Type,
			Doc:      sf.Tag.Get("doc"),
			Default:  sf.Tag.Get("default"),
			Example:  sf.Tag.Get("example"),
			Required: sf.Tag.Get("required") == "true",
			Secret:   sf.Tag.Get("secret") == "true",
		}
		if e, ok := sf.Tag.Lookup("enum"); ok {
			f.Enum = strings.Split(e, "|")
		}
		f.Kind, f.Struct = kindOf(t, sf)
		if f.Secret && f.Kind != kindString {
			panic(fmt.Sprintf("config: %s.%s: secret is only supported on strings", t.Name(), sf.Name))
		}
		if f.Enum != nil && f.Kind != kindString {
			panic(fmt.Sprintf("config: %s.%s: enum is only supported on strings", t.Name(), sf.Name))
		}
		s.Fields = append(s.Fields, f)
		s.byName[name] = f
		s.names = append(s.names, name)
	}
	if t == sinkType {
		for _, f := range sinkKindFields() {
			s.Fields = append(s.Fields, f)
			s.byName[f.Name] = f
			s.names = append(s.names, f.Name)
			s.kinds = append(s.kinds, f.sink)
		}
	}
	// Defaults are decoded after the fields are known, by the same code that decodes YAML.
	for _, f := range s.Fields {
		if f.Default == "" {
			continue
		}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(f.Default), &doc); err != nil || len(doc.Content) != 1 {
			panic(fmt.Sprintf("config: %s.%s: default %q is not YAML", t.Name(), f.GoName, f.Default))
		}
		d := &decoder{pos: map[string]Position{}}
		v := reflect.New(f.Type).Elem()
		d.decodeField(doc.Content[0], v, f, f.Name, f.Name)
		if len(d.errs) > 0 {
			panic(fmt.Sprintf("config: %s.%s: bad default: %s", t.Name(), f.GoName, d.errs[0].Msg))
		}
		f.def = v
	}
	actual, _ := specs.LoadOrStore(t, s)
	return actual.(*structSpec)
}

// kindOf classifies the Go type of a config field.
func kindOf(parent reflect.Type, sf reflect.StructField) (kind, *structSpec) {
	t := sf.Type
	switch {
	case t == durationType:
		return kindDuration, nil
	case t == bytesType:
		return kindBytes, nil
	case reflect.PointerTo(t).Implements(textType) && t.Kind() != reflect.Struct:
		return kindText, nil
	case t.Kind() == reflect.String:
		return kindString, nil
	case t.Kind() == reflect.Bool:
		return kindBool, nil
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int32 || t.Kind() == reflect.Int64:
		return kindInt, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return kindStrings, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Int:
		return kindInts, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return kindStructs, specOf(t.Elem())
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		return kindStringMap, nil
	case t.Kind() == reflect.Struct:
		return kindStruct, specOf(t)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		return kindPtrStruct, specOf(t.Elem())
	}
	panic(fmt.Sprintf("config: %s.%s: unsupported type %s", parent.Name(), sf.Name, t))
}

// typeName describes a field's type for messages and docs.
func (f *field) typeName() string {
	switch f.Kind {
	case kindString:
		return "string"
	case kindBool:
		return "boolean"
	case kindInt:
		return "integer"
	case kindDuration:
		return "duration"
	case kindBytes:
		return "size"
	case kindText:
		switch f.Type {
		case reflect.TypeFor[Percent]():
			return "percentage"
		case reflect.TypeFor[Period]():
			return "period"
		case reflect.TypeFor[Ratio]():
			return "ratio"
		}
		return "string"
	case kindStrings:
		return "list of strings"
	case kindInts:
		return "list of integers"
	case kindStringMap:
		return "map of strings"
	case kindStruct, kindPtrStruct:
		return "object"
	case kindStructs:
		return "list of objects"
	}
	return "unknown"
}
