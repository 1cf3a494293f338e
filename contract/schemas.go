package contract

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bufbuild/protocompile/parser"
	"github.com/bufbuild/protocompile/reporter"
	"github.com/twmb/franz-go/pkg/sr"
)

// Schemas is a pipeline's policy for the schema id of Confluent frames, given to Decoders
// with Decoder.CheckSchemas. Without one a Decoder accepts any schema id and checks the
// message-index path against the contract's own .proto file.
//
// A Schemas is immutable and safe for concurrent use.
type Schemas struct {
	ids []uint32        // accepted ids; empty: any
	reg *SchemaRegistry // resolves ids; nil: the contract's .proto file is the schema
}

// NewSchemas returns the policy that accepts only the schema ids in ids (any id when ids is
// empty) and, when reg is not nil, resolves each accepted id in the Schema Registry, whose
// schema then decides the message-index path the contract's message must carry. It returns
// nil, the policy of no policy, when ids is empty and reg is nil.
func NewSchemas(ids []uint32, reg *SchemaRegistry) *Schemas {
	if len(ids) == 0 && reg == nil {
		return nil
	}
	return &Schemas{ids: slices.Clone(ids), reg: reg}
}

// String describes the policy for a one-line summary: "schema ids: not checked",
// "schema ids: 3 accepted", "schema ids: registry http://..." or both.
func (s *Schemas) String() string {
	switch {
	case s == nil:
		return "schema ids: not checked"
	case s.reg == nil:
		return fmt.Sprintf("schema ids: %d accepted", len(s.ids))
	case len(s.ids) == 0:
		return "schema ids: registry " + s.reg.url
	default:
		return fmt.Sprintf("schema ids: %d accepted, registry %s", len(s.ids), s.reg.url)
	}
}

// frameSchema returns what frames of schema id must match for contract c: a
// *DecodeError (ReasonFraming) when the id is refused, a *RegistryError when the registry
// could not say.
func (s *Schemas) frameSchema(c *Contract, id uint32) (*frameSchema, error) {
	if len(s.ids) > 0 && !slices.Contains(s.ids, id) {
		return nil, &DecodeError{Reason: ReasonFraming, Err: fmt.Errorf("schema id %d is not one of the accepted schema_ids %s", id, formatIDs(s.ids))}
	}
	if s.reg == nil {
		return c.frame, nil
	}
	return s.reg.frameSchema(c, id)
}

func formatIDs(ids []uint32) string {
	const most = 8
	parts := make([]string, 0, min(len(ids), most+1))
	for i, id := range ids {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(ids)-most))
			break
		}
		parts = append(parts, strconv.FormatUint(uint64(id), 10))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// How long the registry's answers are believed. Schema ids are immutable, so a schema
// that was found is kept for the life of the process. An id the registry does not know is
// refused for notFoundTTL (a burst of such frames asks once), then asked again, since a
// registry follower may not yet have replicated a schema its leader just registered. A
// registry that could not answer is not asked again for unreachableTTL, so that the rest
// of a batch (and a redelivery within that time) fails fast instead of one request each.
const (
	notFoundTTL    = time.Minute
	unreachableTTL = time.Second
	lookupTimeout  = 10 * time.Second
)

// SchemaRegistryConfig locates a Confluent-compatible Schema Registry.
type SchemaRegistryConfig struct {
	URL      string // base URL, e.g. "http://registry:8081"
	Username string // HTTP basic auth user; empty for none
	Password string
	TLS      *tls.Config // nil: the system defaults for https URLs
}

// SchemaRegistry resolves Confluent schema ids to their Protobuf schemas (GET
// /schemas/ids/{id}), caching every answer (see notFoundTTL). It is safe for concurrent use;
// lookups of ids not yet cached are serialized, so concurrent decoders ask once per id.
type SchemaRegistry struct {
	url string
	cl  *sr.Client
	now func() time.Time

	mu      sync.Mutex
	schemas map[uint32]*registryEntry
	frames  map[frameKey]frameAnswer
}

// frameAnswer is the verdict on one schema id for one contract: the schema frames must match,
// or why the id is refused.
type frameAnswer struct {
	fs  *frameSchema
	err error
}

type frameKey struct {
	contract string
	id       uint32
}

// registryEntry is the registry's answer for one schema id: the schema's message tree, or
// the error to give until expires (zero: forever).
type registryEntry struct {
	tree    []msgNode
	err     error
	expires time.Time
}

// NewSchemaRegistry returns a client for the registry at cfg.URL. Nothing is contacted
// until the first frame with an uncached schema id.
func NewSchemaRegistry(cfg SchemaRegistryConfig) (*SchemaRegistry, error) {
	opts := []sr.ClientOpt{sr.URLs(cfg.URL), sr.HTTPClient(&http.Client{Timeout: 5 * time.Second}), sr.UserAgent("switchyard")}
	if cfg.Username != "" {
		opts = append(opts, sr.BasicAuth(cfg.Username, cfg.Password))
	}
	if cfg.TLS != nil {
		opts = append(opts, sr.DialTLSConfig(cfg.TLS))
	}
	// Messages and summaries show the URL without a password it may carry.
	shown := cfg.URL
	if u, err := url.Parse(cfg.URL); err == nil {
		shown = u.Redacted()
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry %s: %w", shown, err)
	}
	return &SchemaRegistry{url: shown, cl: cl, now: time.Now, schemas: map[uint32]*registryEntry{}, frames: map[frameKey]frameAnswer{}}, nil
}

// Client returns the franz-go client of the registry, e.g. for client/producer's Registry.
func (r *SchemaRegistry) Client() *sr.Client { return r.cl }

// URL returns the registry's base URL, a password in it shown as "xxxxx".
func (r *SchemaRegistry) URL() string { return r.url }

// RegistryError is returned by Decoder.Decode when the Schema Registry could not be asked
// about a frame's schema id (unreachable, timed out, a server error, refused credentials).
// It is transient: it says nothing about the payload, which must be retried later, not
// dead-lettered.
type RegistryError struct {
	URL string
	ID  uint32
	Err error
}

// Error implements error.
func (e *RegistryError) Error() string {
	return fmt.Sprintf("look up schema id %d in schema registry %s: %v", e.ID, e.URL, e.Err)
}

// Unwrap returns Err.
func (e *RegistryError) Unwrap() error { return e.Err }

func (r *SchemaRegistry) frameSchema(c *Contract, id uint32) (*frameSchema, error) {
	key := frameKey{contract: c.Name(), id: id}
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.frames[key]; ok {
		return a.fs, a.err
	}
	e := r.schemas[id]
	if e == nil || (!e.expires.IsZero() && r.now().After(e.expires)) {
		e = r.fetch(id)
		r.schemas[id] = e
	}
	if e.err != nil {
		return nil, e.err
	}
	want := pathOf(e.tree, c.Name())
	if want == nil {
		defined := names(e.tree)
		if len(defined) > 8 {
			defined = append(defined[:8], "...")
		}
		// Schema ids are immutable: the verdict holds for good.
		err := &DecodeError{Reason: ReasonFraming, Err: fmt.Errorf("schema id %d%s does not define %s (it defines %s)", id, r.subjects(id), c.Name(), strings.Join(defined, ", "))}
		r.frames[key] = frameAnswer{err: err}
		return nil, err
	}
	fs := newFrameSchema(want, fmt.Sprintf("registry schema %d", id), e.tree)
	r.frames[key] = frameAnswer{fs: fs}
	return fs, nil
}

// fetch asks the registry for schema id and parses it. r.mu is held.
func (r *SchemaRegistry) fetch(id uint32) *registryEntry {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	s, err := r.cl.SchemaByID(ctx, int(id))
	var re *sr.ResponseError
	switch {
	case errors.As(err, &re) && (re.ErrorCode == sr.ErrSchemaNotFound.Code || re.StatusCode == http.StatusNotFound):
		return &registryEntry{
			err:     &DecodeError{Reason: ReasonFraming, Err: fmt.Errorf("schema id %d is not in schema registry %s", id, r.url)},
			expires: r.now().Add(notFoundTTL),
		}
	case err != nil:
		return &registryEntry{err: &RegistryError{URL: r.url, ID: id, Err: err}, expires: r.now().Add(unreachableTTL)}
	case s.Type != sr.TypeProtobuf:
		return &registryEntry{err: &DecodeError{Reason: ReasonFraming, Err: fmt.Errorf("schema id %d%s is a %s schema, not PROTOBUF", id, r.subjects(id), schemaType(s.Type))}}
	}
	tree, err := parseSchema(id, s.Schema)
	if err != nil {
		return &registryEntry{err: &DecodeError{Reason: ReasonFraming, Err: err}}
	}
	return &registryEntry{tree: tree}
}

func schemaType(t sr.SchemaType) string {
	if s := t.String(); s != "" {
		return s
	}
	return fmt.Sprintf("type %d", int(t))
}

// subjects returns " (subject a, b)" for id, best effort, for error messages. r.mu is held.
func (r *SchemaRegistry) subjects(id uint32) string {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	subs, err := r.cl.SubjectsByID(ctx, int(id))
	if err != nil || len(subs) == 0 {
		return ""
	}
	return " (subject " + strings.Join(subs, ", ") + ")"
}

// parseSchema returns the message tree of a registry's Protobuf schema text. Imports are
// not resolved: only the declared messages and their order matter here.
func parseSchema(id uint32, text string) ([]msgNode, error) {
	h := reporter.NewHandler(nil)
	name := fmt.Sprintf("schema-%d.proto", id)
	ast, err := parser.Parse(name, strings.NewReader(text), h)
	if err != nil {
		return nil, fmt.Errorf("schema id %d does not parse as a .proto file: %w", id, err)
	}
	res, err := parser.ResultFromAST(ast, false, h)
	if err != nil {
		return nil, fmt.Errorf("schema id %d does not parse as a .proto file: %w", id, err)
	}
	fd := res.FileDescriptorProto()
	return treeOfProto(fd.GetPackage(), fd.GetMessageType()), nil
}
