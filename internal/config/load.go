// Package config loads Switchyard's YAML configuration.
//
// types.go declares every section; its struct tags are the single specification that drives
// decoding, defaults, validation, docs/config.md (Markdown) and docs/config.schema.json
// (JSONSchema). Load decodes yaml.v3 nodes against that declaration so every problem carries
// file:line:col, and reports all problems at once as Errors.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// extensionPrefix starts top-level keys that the loader ignores, so that a file can hold YAML
// anchors (e.g. "x-sink-defaults: &fast {...}") for its pipelines to merge in.
const extensionPrefix = "x-"

// source is one configuration file's name and contents.
type source struct {
	name string
	data []byte
}

// Load reads the configuration at path: one YAML file, or every *.yaml and *.yml file directly
// in a directory, in name order. Each global section (kafka, contracts, admin, logging) may
// appear in only one file; the pipelines lists of all files are concatenated. ${VAR} and
// ${VAR:-default} are replaced from the environment first. Fields that are not written get
// their defaults, then the whole configuration is checked.
//
// A problem with the configuration's contents is returned as Errors holding every problem
// found, with positions; a failure to read path is returned as a wrapped I/O error. On error
// the Config is nil.
func Load(path string) (*Config, error) {
	srcs, err := readSources(path)
	if err != nil {
		return nil, err
	}
	return load(srcs, path, os.LookupEnv)
}

// LoadPartial is Load that also returns, when the configuration has problems, what could be
// decoded, and broken, which reports whether the value at a YAML path (or anything under it)
// failed to decode. It is for reporting every problem in one pass (switchyard validate checks
// the CEL of the route conditions and transforms of what decoded, next to the structural
// errors): the partial Config must not be run. When the sources cannot be read, cfg is nil.
func LoadPartial(path string) (cfg *Config, broken func(path string) bool, err error) {
	srcs, err := readSources(path)
	if err != nil {
		return nil, nil, err
	}
	var d *decoder
	cfg, err = loadWith(srcs, path, os.LookupEnv, &d)
	if err == nil {
		return cfg, func(string) bool { return false }, nil
	}
	c := &checker{bad: d.bad}
	return d.cfg, c.broken, err
}

// Parse is Load for one file's contents held in memory; name is used in positions.
func Parse(name string, data []byte) (*Config, error) {
	return load([]source{{name, data}}, name, os.LookupEnv)
}

// readSources reads a file, or the YAML files in a directory.
func readSources(path string) ([]source, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if !info.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		return []source{{path, data}}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("read config directory: %w", err)
	}
	var srcs []source
	for _, e := range entries { // os.ReadDir sorts by name
		if e.IsDir() || (filepath.Ext(e.Name()) != ".yaml" && filepath.Ext(e.Name()) != ".yml") {
			continue
		}
		name := filepath.Join(path, e.Name())
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		srcs = append(srcs, source{name, data})
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("read config directory %s: no *.yaml or *.yml files", path)
	}
	return srcs, nil
}

// load decodes, merges and checks the sources. root names them all (the file or directory)
// for problems that belong to no single file.
func load(srcs []source, root string, env lookupFunc) (*Config, error) {
	var d *decoder
	return loadWith(srcs, root, env, &d)
}

// loadWith is load, leaving the decoder in *dp for LoadPartial.
func loadWith(srcs []source, root string, env lookupFunc, dp **decoder) (*Config, error) {
	cfg := &Config{Positions: map[string]Position{}, ValuePositions: map[string]Position{}}
	d := &decoder{pos: cfg.Positions, vpos: cfg.ValuePositions, bad: map[string]bool{}, failed: map[*yaml.Node]bool{}, cfg: cfg}
	*dp = d
	spec := rootSpec()
	v := reflect.ValueOf(cfg).Elem()
	rootPos := Position{File: root}
	globals := map[string]Position{}
	for _, src := range srcs {
		d.file = src.name
		for _, doc := range d.parse(src) {
			d.interpolate(doc, env)
			n := resolve(doc)
			if len(srcs) == 1 && rootPos.Line == 0 {
				rootPos = d.at(n)
			}
			if isNull(n) {
				continue
			}
			if n.Kind != yaml.MappingNode {
				d.errorf(n, "invalid configuration: expected a mapping, got %s", describe(n))
				d.broken = true
				continue
			}
			for _, p := range d.pairs(n) {
				f := spec.byName[p.key.Value]
				switch {
				case f == nil && strings.HasPrefix(p.key.Value, extensionPrefix):
					// A place for anchors shared by the sections below; not decoded.
				case f == nil:
					d.errorf(p.key, "unknown field %q%s", p.key.Value, didYouMean(p.key.Value, spec.names))
				case f.Kind == kindStructs:
					if _, ok := d.pos[f.Name]; !ok {
						d.pos[f.Name] = d.at(p.key)
					}
					d.appendPipelines(cfg, p.val)
				default:
					if first, ok := globals[f.Name]; ok {
						d.errorf(p.key, "duplicate section %q (first set at %s)", f.Name, first)
						continue
					}
					globals[f.Name] = d.at(p.key)
					d.pos[f.Name] = d.at(p.key)
					d.decodeField(p.val, v.Field(f.Index), f, f.Name, f.Name)
				}
			}
		}
	}
	for _, f := range spec.Fields {
		if _, ok := globals[f.Name]; !ok && f.Kind != kindStructs {
			// Sections in a file that could not be read may be what is missing.
			d.absent(v.Field(f.Index), f, rootPos, "", f.Name, !d.broken)
		}
	}
	finish(cfg)
	errs := append(d.errs, check(cfg, d.bad)...)
	if len(errs) > 0 {
		return nil, dedupe(errs)
	}
	return cfg, nil
}

// yamlLine matches the line number in yaml.v3 syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the yaml.v3 parser (not scanner) errors, which it reports one line
// early.
var yamlParserProblems = []string{
	"did not find expected key",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected <document start>",
}

// parse splits a source into its YAML documents (usually one), reporting syntax errors.
func (d *decoder) parse(src source) []*yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(src.data)))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			pos := Position{File: src.name}
			if slices.Contains(yamlParserProblems, msg) {
				pos.Line = 1 // yaml.v3 leaves out line numbers it would print as 0
			}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				pos.Line, _ = strconv.Atoi(m[1])
				msg = m[2]
				if slices.Contains(yamlParserProblems, msg) {
					// yaml.v3 reports these with the 0-based line of the enclosing block.
					pos.Line++
				}
			}
			d.errs = append(d.errs, Error{Pos: pos, Msg: "invalid YAML: " + msg})
			d.broken = true
			return docs
		}
		if len(doc.Content) == 1 {
			docs = append(docs, doc.Content[0])
		}
	}
}

// appendPipelines decodes one file's pipelines list onto the end of cfg.Pipelines.
func (d *decoder) appendPipelines(cfg *Config, n *yaml.Node) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "invalid pipelines: expected a list, got %s", describe(n))
		return
	}
	spec := specOf(reflect.TypeFor[Pipeline]())
	for _, el := range n.Content {
		var p Pipeline
		path := fmt.Sprintf("pipelines[%d]", len(cfg.Pipelines))
		d.pos[path] = d.at(el)
		d.decodeStruct(el, reflect.ValueOf(&p).Elem(), spec, path, path)
		p.File, p.Path = d.file, path
		cfg.Pipelines = append(cfg.Pipelines, p)
	}
}

// finish fills what the loader derives rather than reads: sink paths and default group ids.
func finish(cfg *Config) {
	for i := range cfg.Pipelines {
		p := &cfg.Pipelines[i]
		for j := range p.Sinks {
			p.Sinks[j].Path = fmt.Sprintf("%s.sinks[%d]", p.Path, j)
		}
		if p.Source.Group == "" && p.Name != "" {
			p.Source.Group = "switchyard." + p.Name
		}
	}
}

// Merge returns the problems of a and b in file order, without exact repeats, for
// reporting problems found by several passes as one list.
func Merge(a, b Errors) Errors { return dedupe(append(slices.Clone(a), b...)) }

// dedupe sorts problems and drops exact repeats (a mistake inside an anchor that is merged
// into several places is reported once).
func dedupe(errs Errors) Errors {
	errs.sort()
	return slices.Compact(errs)
}

// Pos returns where the value at YAML path (e.g. "pipelines[0].routes[1].when") was written,
// or where its nearest written ancestor was when the value itself was not written (it took a
// default). It returns the zero Position when nothing on the path was written.
func (c *Config) Pos(path string) Position {
	for path != "" {
		if p, ok := c.Positions[path]; ok {
			return p
		}
		path = parentPath(path)
	}
	return Position{}
}

// parentPath strips the last key or index from a YAML path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			// Map keys are quoted and may contain '[': find the '[' that opens the element.
			if q := strings.LastIndex(path, "[\""); q >= 0 && strings.HasSuffix(path, "\"]") {
				i = q
			}
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}
