package contract_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-dev/switchyard/contract"
)

// registryServer implements the Schema Registry endpoints the router calls, GET
// /schemas/ids/{id} and GET /schemas/ids/{id}/subjects, with bodies shaped as in Confluent's
// API reference. No Confluent-compatible registry can run on the test machines (see
// docs/sinks.md, "Confluent framing").
type registryServer struct {
	*httptest.Server
	mu       sync.Mutex
	schemas  map[string]registrySchema // by id
	down     bool                      // answer 503
	user     string                    // required basic-auth user, when set
	pass     string
	requests map[string]int // by path
}

type registrySchema struct {
	Type     string // "" (AVRO), "PROTOBUF", ...
	Text     string
	Subjects []string
}

func newRegistryServer(t *testing.T) *registryServer {
	t.Helper()
	frame, err := os.ReadFile(frameDir + "/test/v1/frame.proto")
	if err != nil {
		t.Fatal(err)
	}
	s := &registryServer{
		schemas: map[string]registrySchema{
			// frame.proto as registered: BidPlaced is [1].
			"1": {"PROTOBUF", string(frame), []string{"bids-value"}},
			// the same messages in another order: BidPlaced is [0] here.
			"5": {"PROTOBUF", "syntax = \"proto3\";\npackage test.v1;\nimport \"google/protobuf/timestamp.proto\";\nmessage BidPlaced { string bid_id = 1; google.protobuf.Timestamp at = 9; }\nmessage Other { string note = 1; }\n", []string{"bids-v2-value"}},
			// another contract altogether.
			"6": {"PROTOBUF", "syntax = \"proto3\";\npackage orders.v1;\nmessage OrderPaid { string order_id = 1; message LineItem { string sku = 1; } }\n", []string{"orders-value"}},
			"8": {"", `{"type": "record", "name": "BidPlaced", "fields": []}`, []string{"bids-avro-value"}},
			"9": {"PROTOBUF", "syntax = \"proto3\"; message {", nil},
		},
		requests: map[string]int{},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *registryServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[r.URL.Path]++
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	reply := func(code int, body any) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
	if s.down {
		reply(http.StatusServiceUnavailable, map[string]any{"error_code": 50003, "message": "Error while forwarding the request to the leader"})
		return
	}
	if s.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != s.user || p != s.pass {
			reply(http.StatusUnauthorized, map[string]any{"error_code": 401, "message": "Unauthorized"})
			return
		}
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/schemas/ids/")
	if r.Method != http.MethodGet || !ok {
		reply(http.StatusNotFound, map[string]any{"error_code": 404, "message": "HTTP 404 Not Found"})
		return
	}
	id, sub, subjects := strings.Cut(rest, "/")
	sc, found := s.schemas[id]
	switch {
	case !found:
		reply(http.StatusNotFound, map[string]any{"error_code": 40403, "message": "Schema " + id + " not found"})
	case subjects && sub == "subjects":
		reply(http.StatusOK, sc.Subjects)
	case subjects:
		reply(http.StatusNotFound, map[string]any{"error_code": 404, "message": "HTTP 404 Not Found"})
	case sc.Type == "":
		reply(http.StatusOK, map[string]any{"schema": sc.Text})
	default:
		reply(http.StatusOK, map[string]any{"schemaType": sc.Type, "schema": sc.Text})
	}
}

func (s *registryServer) count(id uint32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[fmt.Sprintf("/schemas/ids/%d", id)]
}

func (s *registryServer) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func (s *registryServer) client(t *testing.T) *contract.SchemaRegistry {
	t.Helper()
	reg, err := contract.NewSchemaRegistry(contract.SchemaRegistryConfig{URL: s.URL, Username: "sy", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestSchemaRegistry_resolves_the_index_path_per_schema_id(t *testing.T) {
	srv := newRegistryServer(t)
	reg := srv.client(t)
	c := lookup(t, loadFrame(t), "test.v1.BidPlaced")
	dec := c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas(nil, reg))
	for _, tc := range []struct {
		name    string
		payload []byte
		wantErr string
	}{
		{"schema 1: [1]", contract.FrameConfluent(nil, 1, []int{1}, bidBody), ""},
		{"schema 1: [0] selects Other", contract.FrameConfluent(nil, 1, []int{0}, bidBody),
			"decode framing: message index [0] selects test.v1.Other (schema id 1), want [1] for test.v1.BidPlaced"},
		{"schema 5 declares BidPlaced first: [0]", contract.FrameConfluent(nil, 5, []int{0}, bidBody), ""},
		{"schema 5: [1] selects Other there", contract.FrameConfluent(nil, 5, []int{1}, bidBody),
			"decode framing: message index [1] selects test.v1.Other (schema id 5), want [0] for test.v1.BidPlaced"},
		{"schema 5: [7]", contract.FrameConfluent(nil, 5, []int{7}, bidBody),
			"decode framing: message index [7] is out of range in registry schema 5 (schema id 5), want [0] for test.v1.BidPlaced"},
		{"schema 6 is another contract", contract.FrameConfluent(nil, 6, []int{0}, bidBody),
			"decode framing: schema id 6 (subject orders-value) does not define test.v1.BidPlaced (it defines orders.v1.OrderPaid, orders.v1.OrderPaid.LineItem)"},
		{"unknown schema id", contract.FrameConfluent(nil, 987654, []int{1}, bidBody),
			"decode framing: schema id 987654 is not in schema registry " + srv.URL},
		{"avro schema", contract.FrameConfluent(nil, 8, []int{1}, bidBody),
			"decode framing: schema id 8 (subject bids-avro-value) is a AVRO schema, not PROTOBUF"},
		{"schema 1 again", contract.FrameConfluent(nil, 1, []int{1}, bidBody), ""},
	} {
		t.Run(tc.name, func(t *testing.T) { decodeWant(t, dec, tc.payload, tc.wantErr) })
	}
	_, err := dec.Decode(contract.FrameConfluent(nil, 9, []int{0}, bidBody))
	var de *contract.DecodeError
	if !errors.As(err, &de) || de.Reason != contract.ReasonFraming || !strings.HasPrefix(err.Error(), "decode framing: schema id 9 does not parse as a .proto file: ") {
		t.Fatalf("schema that does not parse: Decode = %v", err)
	}

	// Every answer was cached: replaying all of it, with another decoder of the same
	// registry, asks nothing more.
	dec2 := c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas(nil, reg))
	for _, id := range []uint32{1, 5, 6, 8, 9, 987654, 1} {
		_, _ = dec2.Decode(contract.FrameConfluent(nil, id, []int{1}, bidBody))
		dec2.Release()
	}
	for _, id := range []uint32{1, 5, 6, 8, 9, 987654} {
		if n := srv.count(id); n != 1 {
			t.Errorf("schema id %d was looked up %d times, want once", id, n)
		}
	}
}

func TestSchemaRegistry_with_schema_ids_asks_only_about_accepted_ids(t *testing.T) {
	srv := newRegistryServer(t)
	c := lookup(t, loadFrame(t), "test.v1.BidPlaced")
	dec := c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas([]uint32{1}, srv.client(t)))
	decodeWant(t, dec, contract.FrameConfluent(nil, 1, []int{1}, bidBody), "")
	decodeWant(t, dec, contract.FrameConfluent(nil, 5, []int{0}, bidBody), "decode framing: schema id 5 is not one of the accepted schema_ids [1]")
	if srv.count(5) != 0 {
		t.Fatal("a schema id outside schema_ids was looked up")
	}
}

func TestSchemaRegistry_unknown_id_is_asked_again_after_a_minute(t *testing.T) {
	srv := newRegistryServer(t)
	reg := srv.client(t)
	now := time.Unix(1_700_000_000, 0)
	contract.SetRegistryClock(reg, func() time.Time { return now })
	c := lookup(t, loadFrame(t), "test.v1.BidPlaced")
	dec := c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas(nil, reg))
	payload := contract.FrameConfluent(nil, 42, []int{1}, bidBody)
	for range 5 {
		decodeWant(t, dec, payload, "decode framing: schema id 42 is not in schema registry "+srv.URL)
	}
	if n := srv.count(42); n != 1 {
		t.Fatalf("unknown id looked up %d times within a minute, want once", n)
	}
	// The producer registers it; a minute later the router asks again and accepts it.
	srv.mu.Lock()
	srv.schemas["42"] = srv.schemas["1"]
	srv.mu.Unlock()
	now = now.Add(61 * time.Second)
	decodeWant(t, dec, payload, "")
	if n := srv.count(42); n != 2 {
		t.Fatalf("unknown id looked up %d times, want twice", n)
	}
}

func TestSchemaRegistry_outage_is_transient_not_framing(t *testing.T) {
	srv := newRegistryServer(t)
	reg := srv.client(t)
	now := time.Unix(1_700_000_000, 0)
	contract.SetRegistryClock(reg, func() time.Time { return now })
	c := lookup(t, loadFrame(t), "test.v1.BidPlaced")
	dec := c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas(nil, reg))
	payload := contract.FrameConfluent(nil, 1, []int{1}, bidBody)

	srv.setDown(true)
	for range 3 {
		_, err := dec.Decode(payload)
		var re *contract.RegistryError
		var de *contract.DecodeError
		if !errors.As(err, &re) || errors.As(err, &de) || re.ID != 1 {
			t.Fatalf("Decode with the registry down = %v, want a *RegistryError and no *DecodeError", err)
		}
		if !strings.HasPrefix(err.Error(), "look up schema id 1 in schema registry "+srv.URL+": ") {
			t.Fatalf("error %q", err)
		}
	}
	if n := srv.count(1); n != 1 {
		t.Fatalf("registry asked %d times within a second of failing, want once", n)
	}
	srv.setDown(false)
	now = now.Add(2 * time.Second)
	decodeWant(t, dec, payload, "")

	// Unreachable (nothing listens) is transient too.
	srv.Close()
	down, err := contract.NewSchemaRegistry(contract.SchemaRegistryConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas(nil, down)).Decode(payload)
	if re := (*contract.RegistryError)(nil); !errors.As(err, &re) {
		t.Fatalf("Decode with the registry unreachable = %v, want a *RegistryError", err)
	}
}

func TestSchemaRegistry_sends_basic_auth(t *testing.T) {
	srv := newRegistryServer(t)
	srv.user, srv.pass = "sy", "pw"
	c := lookup(t, loadFrame(t), "test.v1.BidPlaced")
	payload := contract.FrameConfluent(nil, 1, []int{1}, bidBody)
	decodeWant(t, c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas(nil, srv.client(t))), payload, "")

	wrong, err := contract.NewSchemaRegistry(contract.SchemaRegistryConfig{URL: srv.URL, Username: "sy", Password: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.NewDecoder(contract.Confluent).CheckSchemas(contract.NewSchemas(nil, wrong)).Decode(payload)
	if re := (*contract.RegistryError)(nil); !errors.As(err, &re) || !strings.Contains(err.Error(), "Unauthorized") {
		t.Fatalf("Decode with refused credentials = %v, want a *RegistryError saying Unauthorized", err)
	}
}
