package config

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// SinkKind declares one kind of sink to the loader: the key a sink sets to use it and the
// struct that key decodes into. The loader knows sink kinds only through these declarations;
// sink packages make them with switchyard/sinks/registry, which registers this part here.
// The options struct uses the same tags as the structs in types.go, so parsing, defaults,
// secrets, docs/config.md and the JSON Schema cover it.
type SinkKind struct {
	// Name is the YAML key of the kind's section in a sink, e.g. "kafka".
	Name string
	// Doc describes the section in one sentence, for docs and editors.
	Doc string
	// Config returns a pointer to a new zero value of the kind's options struct.
	Config func() any
	// Topic is set for kinds that write to topics, which a route may name (route topic): it
	// returns the default topic of the options opts, "" when they name none. Routes to
	// other kinds may not set topic.
	Topic func(opts any) string
	// Check, when set, checks opts against the rest of pipeline p, without contracts, when
	// the configuration is loaded; it is not called when the section failed to decode. Each
	// message is reported at the kind's section, after "pipeline %q: sink %q: ".
	Check func(opts any, p *Pipeline) []string
}

var (
	sinkKindsMu sync.Mutex
	sinkKinds   []*SinkKind // sorted by name
	sinksRead   bool        // the Sink declaration was built; no more kinds may be added
	sinkType    = reflect.TypeFor[Sink]()
)

// RegisterSinkKind adds a sink kind. Call it from an init function (switchyard/sinks/registry
// does): it panics once a configuration has been read, on a second kind with the same name,
// and on a declaration the loader cannot handle.
func RegisterSinkKind(k SinkKind) {
	if k.Name == "" || k.Config == nil {
		panic("config: a sink kind needs a name and a config")
	}
	if t := reflect.TypeOf(k.Config()); t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("config: sink kind %q: config must return a pointer to a struct, not %v", k.Name, t))
	}
	sinkKindsMu.Lock()
	defer sinkKindsMu.Unlock()
	if sinksRead {
		panic(fmt.Sprintf("config: sink kind %q registered after a configuration was read; register sink kinds from init functions", k.Name))
	}
	for i := range sinkType.NumField() {
		if name := sinkType.Field(i).Tag.Get("yaml"); name == k.Name {
			panic(fmt.Sprintf("config: sink kind %q clashes with the sink key of the same name", k.Name))
		}
	}
	i, found := slices.BinarySearchFunc(sinkKinds, k.Name, func(e *SinkKind, name string) int {
		switch {
		case e.Name < name:
			return -1
		case e.Name > name:
			return 1
		}
		return 0
	})
	if found {
		panic(fmt.Sprintf("config: sink kind %q registered twice", k.Name))
	}
	sinkKinds = slices.Insert(sinkKinds, i, &k)
}

// SinkKinds returns the names of the registered sink kinds, sorted.
func SinkKinds() []string {
	sinkKindsMu.Lock()
	defer sinkKindsMu.Unlock()
	names := make([]string, len(sinkKinds))
	for i, k := range sinkKinds {
		names[i] = k.Name
	}
	return names
}

// sinkKindFields returns one field per registered kind, in name order, and closes
// registration: the Sink declaration is cached from here on.
func sinkKindFields() []*field {
	sinkKindsMu.Lock()
	defer sinkKindsMu.Unlock()
	sinksRead = true
	fields := make([]*field, len(sinkKinds))
	for i, k := range sinkKinds {
		t := reflect.TypeOf(k.Config())
		fields[i] = &field{
			Name:   k.Name,
			GoName: "kind " + k.Name,
			Index:  -1,
			Kind:   kindPtrStruct,
			Type:   t,
			Doc:    k.Doc,
			Struct: specOf(t.Elem()),
			sink:   k,
		}
	}
	return fields
}

// sinkSection is one kind section a sink sets.
type sinkSection struct {
	kind *SinkKind
	opts any
}

// sections returns the kind sections s sets, in kind order: those decoded, or for a Sink
// built in code, the one its Kind and Options name.
func (s *Sink) sections() []sinkSection {
	if s.decoded != nil || s.Kind == "" {
		return s.decoded
	}
	for _, k := range sinkSpec().kinds {
		if k.Name == s.Kind {
			return []sinkSection{{k, s.Options}}
		}
	}
	return nil
}

// addSection records a decoded kind section, keeping kind order, and sets Kind and Options
// while the sink sets exactly one.
func (s *Sink) addSection(k *SinkKind, opts any) {
	s.decoded = append(s.decoded, sinkSection{k, opts})
	slices.SortStableFunc(s.decoded, func(a, b sinkSection) int {
		switch {
		case a.kind.Name < b.kind.Name:
			return -1
		case a.kind.Name > b.kind.Name:
			return 1
		}
		return 0
	})
	s.Kind, s.Options = "", nil
	if len(s.decoded) == 1 {
		s.Kind, s.Options = k.Name, opts
	}
}

// sinkSpec is the declaration of Sink, with the registered kinds.
func sinkSpec() *structSpec { return specOf(sinkType) }

// topicKinds returns the names of the kinds that take a route topic.
func topicKinds() []string {
	var names []string
	for _, k := range sinkSpec().kinds {
		if k.Topic != nil {
			names = append(names, k.Name)
		}
	}
	return names
}
