package bqfake_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/switchyard-dev/switchyard/sinks/bigquery/bqfake"
)

const project, dataset = "p", "d"

type env struct {
	fake *bqfake.Server
	bq   *bigquery.Client
	mw   *managedwriter.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	fake, err := bqfake.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	ctx := context.Background()
	bq, err := bigquery.NewClient(ctx, project, option.WithEndpoint(fake.RESTEndpoint()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bq.Close() })
	conn, err := grpc.NewClient(fake.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	mw, err := managedwriter.NewClient(ctx, project, option.WithGRPCConn(conn), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mw.Close() })
	if err := bq.Dataset(dataset).Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, bq: bq, mw: mw}
}

// createTable creates table t (id STRING REQUIRED, n INTEGER, ts TIMESTAMP).
func (e *env) createTable(t *testing.T, id string) {
	t.Helper()
	err := e.bq.Dataset(dataset).Table(id).Create(context.Background(), &bigquery.TableMetadata{Schema: bigquery.Schema{
		{Name: "id", Type: bigquery.StringFieldType, Required: true},
		{Name: "n", Type: bigquery.IntegerFieldType},
		{Name: "ts", Type: bigquery.TimestampFieldType},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// writer is the writer descriptor {string id = 1; int64 n = 2; int64 ts = 3} plus extra.
func writer(extra ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
	f := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: typ.Enum()}
	}
	return &descriptorpb.DescriptorProto{Name: proto.String("Row"), Field: append([]*descriptorpb.FieldDescriptorProto{
		f("id", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING),
		f("n", 2, descriptorpb.FieldDescriptorProto_TYPE_INT64),
		f("ts", 3, descriptorpb.FieldDescriptorProto_TYPE_INT64),
	}, extra...)}
}

func row(id string, n int64, tsMicros int64) []byte {
	var b []byte
	if id != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, id)
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(tsMicros))
}

func parent(table string) string { return managedwriter.TableParentFromParts(project, dataset, table) }

func (e *env) stream(t *testing.T, table string, typ managedwriter.StreamType, dp *descriptorpb.DescriptorProto, opts ...managedwriter.WriterOption) *managedwriter.ManagedStream {
	t.Helper()
	ms, err := e.mw.NewManagedStream(context.Background(), append([]managedwriter.WriterOption{
		managedwriter.WithDestinationTable(parent(table)), managedwriter.WithType(typ), managedwriter.WithSchemaDescriptor(dp),
	}, opts...)...)
	if err != nil {
		t.Fatalf("new managed stream: %v", err)
	}
	t.Cleanup(func() { ms.Close() })
	return ms
}

func appendRows(t *testing.T, ms *managedwriter.ManagedStream, rows [][]byte, opts ...managedwriter.AppendOption) (*storagepb.AppendRowsResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := ms.AppendRows(ctx, rows, opts...)
	if err != nil {
		return nil, err
	}
	return res.FullResponse(ctx)
}

func TestFake_offsets_on_a_committed_stream(t *testing.T) {
	e := newEnv(t)
	e.createTable(t, "offsets")
	ms := e.stream(t, "offsets", managedwriter.CommittedStream, writer())
	for _, tc := range []struct {
		offset int64
		code   codes.Code
	}{
		{0, codes.OK},
		{0, codes.AlreadyExists},
		{5, codes.OutOfRange},
		{2, codes.OK},
		{3, codes.AlreadyExists},
	} {
		_, err := appendRows(t, ms, [][]byte{row("a", 1, 0), row("b", 2, 0)}, managedwriter.WithOffset(tc.offset))
		if got := status.Code(err); got != tc.code {
			t.Fatalf("append at offset %d: got %v (%v), want %v", tc.offset, got, err, tc.code)
		}
	}
	if n := e.fake.RowCount(project, dataset, "offsets"); n != 4 {
		t.Fatalf("rows: got %d, want 4", n)
	}
	rowCount, err := ms.Finalize(context.Background())
	if err != nil || rowCount != 4 {
		t.Fatalf("finalize: got %d, %v; want 4 rows", rowCount, err)
	}
	_, err = appendRows(t, ms, [][]byte{row("c", 3, 0)}, managedwriter.WithOffset(4))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "finalized") {
		t.Fatalf("append after finalize: got %v, want INVALID_ARGUMENT stream finalized", err)
	}
}

func TestFake_checks_what_bigquery_checks(t *testing.T) {
	e := newEnv(t)
	e.createTable(t, "checks")
	extra := &descriptorpb.FieldDescriptorProto{Name: proto.String("nope"), Number: proto.Int32(4),
		Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()}
	badType := writer()
	badType.Field[1].Type = descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum() // n INTEGER written as string
	noRequired := writer()
	noRequired.Field = noRequired.Field[1:]
	for _, tc := range []struct {
		name   string
		dp     *descriptorpb.DescriptorProto
		rows   [][]byte
		want   string
		rowErr bool
	}{
		{"extra_field", writer(extra), [][]byte{row("a", 1, 0)}, "more fields than BigQuery schema, extra fields: 'nope'", false},
		{"incompatible_type", badType, [][]byte{row("a", 1, 0)}, "cannot be written to a BigQuery column of type INTEGER", false},
		{"required_not_in_schema", noRequired, [][]byte{row("", 1, 0)}, "lacks the REQUIRED field 'id'", false},
		{"required_missing_in_row", writer(), [][]byte{row("a", 1, 0), row("", 2, 0)}, "Field 'id' is REQUIRED but has no value", true},
		{"timestamp_out_of_range", writer(), [][]byte{row("a", 1, 253402300800*1_000_000)}, "out of range", true},
		{"bad_utf8", writer(), [][]byte{row("\xff", 1, 0)}, "invalid UTF-8", true},
		{"request_over_10MB", writer(), [][]byte{row(strings.Repeat("x", 6<<20), 1, 0), row(strings.Repeat("y", 5<<20), 1, 0)}, "request too large", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := e.stream(t, "checks", managedwriter.DefaultStream, tc.dp)
			resp, err := appendRows(t, ms, tc.rows)
			if err == nil || !strings.Contains(err.Error()+rowErrorsOf(resp), tc.want) {
				t.Fatalf("got %v (row errors %q), want an error containing %q", err, rowErrorsOf(resp), tc.want)
			}
			if got := len(resp.GetRowErrors()) > 0; got != tc.rowErr {
				t.Fatalf("row errors: got %v, want %v", resp.GetRowErrors(), tc.rowErr)
			}
		})
	}
	if n := e.fake.RowCount(project, dataset, "checks"); n != 0 {
		t.Fatalf("rejected requests landed %d rows", n)
	}
}

func rowErrorsOf(resp *storagepb.AppendRowsResponse) string {
	var s []string
	for _, re := range resp.GetRowErrors() {
		s = append(s, re.GetMessage())
	}
	return strings.Join(s, "; ")
}

func TestFake_pending_stream_commits_atomically(t *testing.T) {
	e := newEnv(t)
	e.createTable(t, "pending")
	ms := e.stream(t, "pending", managedwriter.PendingStream, writer())
	if _, err := appendRows(t, ms, [][]byte{row("a", 1, 0)}, managedwriter.WithOffset(0)); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.RowCount(project, dataset, "pending"); n != 0 {
		t.Fatalf("pending rows visible before commit: %d", n)
	}
	ctx := context.Background()
	req := &storagepb.BatchCommitWriteStreamsRequest{Parent: parent("pending"), WriteStreams: []string{ms.StreamName()}}
	resp, err := e.mw.BatchCommitWriteStreams(ctx, req)
	if err != nil || len(resp.GetStreamErrors()) != 1 {
		t.Fatalf("commit before finalize: got %v, %v; want a stream error", resp, err)
	}
	if _, err := ms.Finalize(ctx); err != nil {
		t.Fatal(err)
	}
	if resp, err = e.mw.BatchCommitWriteStreams(ctx, req); err != nil || len(resp.GetStreamErrors()) != 0 || resp.GetCommitTime() == nil {
		t.Fatalf("commit: got %v, %v", resp, err)
	}
	if n := e.fake.RowCount(project, dataset, "pending"); n != 1 {
		t.Fatalf("rows after commit: got %d, want 1", n)
	}
	ws, err := e.mw.GetWriteStream(ctx, &storagepb.GetWriteStreamRequest{Name: ms.StreamName()})
	if err != nil || ws.GetType() != storagepb.WriteStream_PENDING {
		t.Fatalf("get write stream: %v, %v", ws, err)
	}
}

func TestFake_faults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTable(t, "faults")
	// A response lost after the write took effect: the library's retry gets ALREADY_EXISTS.
	ms := e.stream(t, "faults", managedwriter.CommittedStream, writer(), managedwriter.EnableWriteRetries(true))
	e.fake.FailAppends(1, bqfake.Fault{Code: codes.Unavailable, AfterWrite: true})
	_, err := appendRows(t, ms, [][]byte{row("a", 1, 0)}, managedwriter.WithOffset(0))
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("append with a lost response: got %v, want ALREADY_EXISTS from the retry", err)
	}
	if n := e.fake.RowCount(project, dataset, "faults"); n != 1 {
		t.Fatalf("rows: got %d, want 1", n)
	}
	// UNAVAILABLE before the write: retried by the library, lands once.
	e.fake.FailAppends(2, bqfake.Fault{Code: codes.Unavailable})
	if _, err := appendRows(t, ms, [][]byte{row("b", 2, 0)}, managedwriter.WithOffset(1)); err != nil {
		t.Fatalf("append after UNAVAILABLE: %v", err)
	}
	// RESOURCE_EXHAUSTED in band, with a message the library does not retry.
	e.fake.FailAppends(1, bqfake.Fault{Code: codes.ResourceExhausted, Message: "Exceeds 'Concurrent connections' quota", InBand: true})
	if _, err := appendRows(t, ms, [][]byte{row("c", 3, 0)}, managedwriter.WithOffset(2)); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("append: got %v, want RESOURCE_EXHAUSTED", err)
	}
	// Row errors.
	e.fake.RejectRows(func(table string, r bqfake.Row) string {
		if r["id"] == "bad" {
			return "bad row"
		}
		return ""
	})
	resp, err := appendRows(t, ms, [][]byte{row("ok", 1, 0), row("bad", 2, 0)}, managedwriter.WithOffset(2))
	if err == nil || len(resp.GetRowErrors()) != 1 || resp.GetRowErrors()[0].GetIndex() != 1 {
		t.Fatalf("row errors: got %v, %v", resp.GetRowErrors(), err)
	}
	e.fake.RejectRows(nil)
	// Latency.
	e.fake.SetLatency(300 * time.Millisecond)
	start := time.Now()
	if _, err := appendRows(t, ms, [][]byte{row("slow", 1, 0)}, managedwriter.WithOffset(2)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("append took %v, want at least the injected 300ms", d)
	}
	rows, err := e.fake.Rows(project, dataset, "faults")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		ids = append(ids, r["id"].(string))
	}
	if got := strings.Join(ids, ","); got != "a,b,slow" {
		t.Fatalf("landed ids: got %s, want a,b,slow", got)
	}
}

func TestFake_tables_patch_with_etag(t *testing.T) {
	e := newEnv(t)
	e.createTable(t, "patch")
	ctx := context.Background()
	tb := e.bq.Dataset(dataset).Table("patch")
	md, err := tb.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	grown := append(md.Schema, &bigquery.FieldSchema{Name: "extra", Type: bigquery.StringFieldType})
	if _, err := tb.Update(ctx, bigquery.TableMetadataToUpdate{Schema: grown}, "stale-etag"); httpCode(err) != http.StatusPreconditionFailed {
		t.Fatalf("patch with a stale etag: got %v, want 412", err)
	}
	if _, err := tb.Update(ctx, bigquery.TableMetadataToUpdate{Schema: grown}, md.ETag); err != nil {
		t.Fatalf("patch: %v", err)
	}
	changed := append(bigquery.Schema{}, grown...)
	changed[1] = &bigquery.FieldSchema{Name: "n", Type: bigquery.StringFieldType}
	if _, err := tb.Update(ctx, bigquery.TableMetadataToUpdate{Schema: changed}, ""); httpCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "changed type") {
		t.Fatalf("type change: got %v, want 400 changed type", err)
	}
	required := append(append(bigquery.Schema{}, grown...), &bigquery.FieldSchema{Name: "req", Type: bigquery.StringFieldType, Required: true})
	if _, err := tb.Update(ctx, bigquery.TableMetadataToUpdate{Schema: required}, ""); httpCode(err) != http.StatusBadRequest {
		t.Fatalf("adding a REQUIRED column: got %v, want 400", err)
	}
	e.fake.Deny("bigquery.tables.get")
	if _, err := tb.Metadata(ctx); httpCode(err) != http.StatusForbidden || !strings.Contains(err.Error(), "bigquery.tables.get") {
		t.Fatalf("denied get: got %v", err)
	}
}

func httpCode(err error) int {
	var e *googleapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestFake_outage_fails_every_append_until_it_ends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTable(t, "outage")
	ms := e.stream(t, "outage", managedwriter.DefaultStream, writer(), managedwriter.EnableWriteRetries(true))
	e.fake.StartOutage(bqfake.Fault{Code: codes.Unavailable})
	for i := range 2 {
		// The library retries UNAVAILABLE a few times, then gives up.
		if _, err := appendRows(t, ms, [][]byte{row("lost", int64(i), 0)}); status.Code(err) != codes.Unavailable {
			t.Fatalf("append %d during the outage: got %v, want UNAVAILABLE", i, err)
		}
	}
	if n := e.fake.RowCount(project, dataset, "outage"); n != 0 {
		t.Fatalf("rows during the outage: got %d, want 0", n)
	}
	if f := e.fake.Faulted(); f < 2 {
		t.Fatalf("Faulted() = %d after 2 failed appends, want at least 2", f)
	}
	// REST and the other write RPCs keep working.
	if _, err := e.bq.Dataset(dataset).Table("outage").Metadata(context.Background()); err != nil {
		t.Fatalf("tables.get during the outage: %v", err)
	}
	e.fake.EndOutage()
	if _, err := appendRows(t, ms, [][]byte{row("back", 1, 0)}); err != nil {
		t.Fatalf("append after the outage: %v", err)
	}
	if n := e.fake.RowCount(project, dataset, "outage"); n != 1 {
		t.Fatalf("rows after the outage: got %d, want 1", n)
	}
}
