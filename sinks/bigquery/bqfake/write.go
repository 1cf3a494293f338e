package bqfake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	bq "google.golang.org/api/bigquery/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// writeServer implements the BigQueryWrite gRPC service.
type writeServer struct {
	storagepb.UnimplementedBigQueryWriteServer
	s *Server
}

// storageErr is a status with a StorageError detail, as BigQuery sends for stream problems.
func storageErr(c codes.Code, sc storagepb.StorageError_StorageErrorCode, entity, msg string) *status.Status {
	st := status.New(c, msg)
	if d, err := st.WithDetails(&storagepb.StorageError{Code: sc, Entity: entity, ErrorMessage: msg}); err == nil {
		return d
	}
	return st
}

// deniedRPC returns a PERMISSION_DENIED error if permission is denied. Callers hold s.mu.
func (s *Server) deniedRPC(permission, resource string) error {
	if !s.denied[permission] {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "Permission '%s' denied on resource '%s' (or it may not exist).", permission, resource)
}

func (s *Server) writeStreamOf(st *stream, withSchema bool) *storagepb.WriteStream {
	ws := &storagepb.WriteStream{
		Name:       st.name,
		Type:       st.typ,
		CreateTime: timestamppb.New(st.created),
		WriteMode:  storagepb.WriteStream_INSERT,
		Location:   s.Location,
	}
	if st.typ == storagepb.WriteStream_COMMITTED {
		ws.CommitTime = ws.CreateTime
	}
	if withSchema {
		if t, ok := s.tables[st.table]; ok {
			ws.TableSchema = storageSchema(t.meta.Schema.Fields)
		}
	}
	return ws
}

func (w *writeServer) CreateWriteStream(ctx context.Context, req *storagepb.CreateWriteStreamRequest) (*storagepb.WriteStream, error) {
	s := w.s
	if err := s.hold(ctx, nil); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.deniedRPC("bigquery.tables.updateData", req.GetParent()); err != nil {
		return nil, err
	}
	key, sid, ok := tableFromParent(req.GetParent())
	if !ok || sid != "" {
		return nil, status.Errorf(codes.InvalidArgument, "invalid parent %q", req.GetParent())
	}
	if _, ok := s.tables[key]; !ok {
		return nil, status.Errorf(codes.NotFound, "Requested entity was not found. Entity: %s", req.GetParent())
	}
	typ := req.GetWriteStream().GetType()
	switch typ {
	case storagepb.WriteStream_COMMITTED, storagepb.WriteStream_PENDING:
	case storagepb.WriteStream_BUFFERED:
		return nil, status.Error(codes.Unimplemented, "bqfake: BUFFERED streams are not supported")
	default:
		return nil, status.Error(codes.InvalidArgument, "write stream type is required")
	}
	st := &stream{
		name:    fmt.Sprintf("%s/streams/fake%06d", req.GetParent(), s.nextSeq()),
		table:   key,
		typ:     typ,
		created: time.Now(),
	}
	s.streams[st.name] = st
	return s.writeStreamOf(st, true), nil
}

// lookupStream resolves a stream name, including a table's _default stream. Callers hold s.mu.
func (s *Server) lookupStream(name string) (*stream, error) {
	key, sid, ok := tableFromParent(name)
	if !ok || sid == "" {
		return nil, status.Errorf(codes.InvalidArgument, "invalid stream name %q", name)
	}
	if sid == "_default" {
		t, ok := s.tables[key]
		if !ok {
			return nil, status.Errorf(codes.NotFound, "Requested entity was not found. Entity: %s", name)
		}
		return t.def, nil
	}
	st, ok := s.streams[name]
	if !ok {
		return nil, storageErr(codes.NotFound, storagepb.StorageError_STREAM_NOT_FOUND, name, "Stream not found: "+name).Err()
	}
	if _, ok := s.tables[key]; !ok {
		return nil, status.Errorf(codes.NotFound, "Table of stream %s was deleted", name)
	}
	return st, nil
}

func (w *writeServer) GetWriteStream(ctx context.Context, req *storagepb.GetWriteStreamRequest) (*storagepb.WriteStream, error) {
	s := w.s
	if err := s.hold(ctx, nil); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.deniedRPC("bigquery.tables.updateData", req.GetName()); err != nil {
		return nil, err
	}
	st, err := s.lookupStream(req.GetName())
	if err != nil {
		return nil, err
	}
	return s.writeStreamOf(st, req.GetView() == storagepb.WriteStreamView_FULL), nil
}

func (w *writeServer) FinalizeWriteStream(ctx context.Context, req *storagepb.FinalizeWriteStreamRequest) (*storagepb.FinalizeWriteStreamResponse, error) {
	s := w.s
	if err := s.hold(ctx, nil); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.deniedRPC("bigquery.tables.updateData", req.GetName()); err != nil {
		return nil, err
	}
	st, err := s.lookupStream(req.GetName())
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(st.name, "/_default") {
		return nil, status.Error(codes.InvalidArgument, "the _default stream cannot be finalized")
	}
	st.finalized = true
	return &storagepb.FinalizeWriteStreamResponse{RowCount: st.count}, nil
}

func (w *writeServer) BatchCommitWriteStreams(ctx context.Context, req *storagepb.BatchCommitWriteStreamsRequest) (*storagepb.BatchCommitWriteStreamsResponse, error) {
	s := w.s
	if err := s.hold(ctx, nil); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.deniedRPC("bigquery.tables.updateData", req.GetParent()); err != nil {
		return nil, err
	}
	key, _, ok := tableFromParent(req.GetParent())
	t, exists := s.tables[key]
	if !ok || !exists {
		return nil, status.Errorf(codes.NotFound, "Requested entity was not found. Entity: %s", req.GetParent())
	}
	var errs []*storagepb.StorageError
	var commit []*stream
	for _, name := range req.GetWriteStreams() {
		st, ok := s.streams[name]
		switch {
		case !ok || st.table != key:
			errs = append(errs, &storagepb.StorageError{Code: storagepb.StorageError_STREAM_NOT_FOUND, Entity: name, ErrorMessage: "stream not found in " + req.GetParent()})
		case st.typ != storagepb.WriteStream_PENDING:
			errs = append(errs, &storagepb.StorageError{Code: storagepb.StorageError_INVALID_STREAM_TYPE, Entity: name, ErrorMessage: "only PENDING streams can be committed"})
		case !st.finalized:
			errs = append(errs, &storagepb.StorageError{Code: storagepb.StorageError_INVALID_STREAM_STATE, Entity: name, ErrorMessage: "stream is not finalized"})
		case st.committed:
			errs = append(errs, &storagepb.StorageError{Code: storagepb.StorageError_STREAM_ALREADY_COMMITTED, Entity: name, ErrorMessage: "stream is already committed"})
		default:
			commit = append(commit, st)
		}
	}
	if len(errs) > 0 {
		return &storagepb.BatchCommitWriteStreamsResponse{StreamErrors: errs}, nil
	}
	for _, st := range commit {
		t.rows = append(t.rows, st.rows...)
		st.rows, st.committed = nil, true
	}
	return &storagepb.BatchCommitWriteStreamsResponse{CommitTime: timestamppb.Now()}, nil
}

// connState is what one AppendRows connection remembers between requests.
type connState struct {
	stream string
	desc   protoreflect.MessageDescriptor
	schema []byte // the serialized DescriptorProto desc was built from
}

func (w *writeServer) AppendRows(conn storagepb.BigQueryWrite_AppendRowsServer) error {
	s := w.s
	var cs connState
	for {
		req, err := conn.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.appends.Add(1)
		s.inFlight.Add(1)
		err = w.handle(conn, &cs, req)
		s.inFlight.Add(-1)
		if err != nil {
			return err
		}
	}
}

// handle processes one AppendRows request of a connection; an error ends the connection.
func (w *writeServer) handle(conn storagepb.BigQueryWrite_AppendRowsServer, cs *connState, req *storagepb.AppendRowsRequest) error {
	s := w.s
	if err := s.hold(conn.Context(), &s.heldAppends); err != nil {
		return err // the client gave up on the connection: the request has no effect
	}
	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-conn.Context().Done():
			return conn.Context().Err()
		}
	}
	if name := req.GetWriteStream(); name != "" {
		cs.stream = name
	}
	if cs.stream == "" {
		return status.Error(codes.InvalidArgument, "the first request on a connection must name the write stream")
	}
	if ps := req.GetProtoRows().GetWriterSchema(); ps != nil {
		raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(ps.GetProtoDescriptor())
		if cs.desc == nil || string(raw) != string(cs.schema) {
			desc, err := writerDescriptor(ps.GetProtoDescriptor())
			if err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
			cs.desc, cs.schema = desc, raw
		}
	}
	if cs.desc == nil {
		return status.Error(codes.InvalidArgument, "the first request on a connection must carry the writer schema")
	}
	s.mu.Lock()
	fault, faulty := s.popFault()
	s.mu.Unlock()
	if faulty {
		s.faulted.Add(1)
	}
	if faulty && !fault.AfterWrite {
		if fault.InBand {
			if err := conn.Send(&storagepb.AppendRowsResponse{WriteStream: cs.stream,
				Response: &storagepb.AppendRowsResponse_Error{Error: faultStatus(fault).Proto()}}); err != nil {
				return err
			}
			return nil
		}
		return faultStatus(fault).Err()
	}
	resp, err := s.append(cs, req)
	if err != nil {
		return err
	}
	if faulty {
		// The write took effect; its response is lost.
		return faultStatus(fault).Err()
	}
	return conn.Send(resp)
}

func faultStatus(f Fault) *status.Status {
	msg := f.Message
	if msg == "" {
		msg = "bqfake: injected " + f.Code.String()
	}
	return status.New(f.Code, msg)
}

// append applies one AppendRows request. Problems with the request come back in the
// response; an error ends the connection.
func (s *Server) append(cs *connState, req *storagepb.AppendRowsRequest) (*storagepb.AppendRowsResponse, error) {
	resp := &storagepb.AppendRowsResponse{WriteStream: cs.stream}
	fail := func(st *status.Status) (*storagepb.AppendRowsResponse, error) {
		resp.Response = &storagepb.AppendRowsResponse_Error{Error: st.Proto()}
		return resp, nil
	}
	if size := proto.Size(req); size > RequestLimit {
		return fail(status.Newf(codes.InvalidArgument, "AppendRows request too large: %d bytes; the limit is %d", size, RequestLimit))
	}
	rows := req.GetProtoRows().GetRows().GetSerializedRows()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.deniedRPC("bigquery.tables.updateData", cs.stream); err != nil {
		return nil, err
	}
	st, err := s.lookupStream(cs.stream)
	if err != nil {
		return fail(status.Convert(err))
	}
	t := s.tables[st.table]
	if st.finalized {
		return fail(storageErr(codes.InvalidArgument, storagepb.StorageError_STREAM_FINALIZED, st.name, "Stream is finalized: "+st.name))
	}
	isDefault := st == t.def
	if off := req.GetOffset(); off != nil {
		switch {
		case isDefault:
			return fail(status.New(codes.InvalidArgument, "an offset cannot be given for the _default stream"))
		case off.GetValue() < st.count:
			return fail(storageErr(codes.AlreadyExists, storagepb.StorageError_OFFSET_ALREADY_EXISTS, st.name,
				fmt.Sprintf("The offset is within stream, expected offset %d, received %d", st.count, off.GetValue())))
		case off.GetValue() > st.count:
			return fail(storageErr(codes.OutOfRange, storagepb.StorageError_OFFSET_OUT_OF_RANGE, st.name,
				fmt.Sprintf("The offset is beyond stream, expected offset %d, received %d", st.count, off.GetValue())))
		}
	}
	v, err := s.validator(t, cs.desc)
	if err != nil {
		return fail(status.New(codes.InvalidArgument, err.Error()))
	}
	var rowErrs []*storagepb.RowError
	for i, row := range rows {
		msg := ""
		if err := v.check(row); err != nil {
			msg = err.Error()
		} else if s.rejectFn != nil {
			decoded, err := decodeRow(cs.desc, row, t.meta.Schema.Fields)
			if err != nil {
				msg = err.Error()
			} else {
				msg = s.rejectFn(t.meta.TableReference.TableId, decoded)
			}
		}
		if msg != "" {
			rowErrs = append(rowErrs, &storagepb.RowError{Index: int64(i), Code: storagepb.RowError_FIELDS_ERROR, Message: msg})
		}
	}
	if len(rowErrs) > 0 {
		resp.RowErrors = rowErrs
		return fail(status.New(codes.InvalidArgument, "Errors found while processing rows. Please refer to the row_errors field for details. The list may not be complete because of the size limitations."))
	}
	start := st.count
	for i, row := range rows {
		rec := stored{data: row, desc: cs.desc, stream: st.name, offset: start + int64(i)}
		if st.typ == storagepb.WriteStream_PENDING {
			st.rows = append(st.rows, rec)
		} else {
			t.rows = append(t.rows, rec)
		}
	}
	st.count += int64(len(rows))
	result := &storagepb.AppendRowsResponse_AppendResult{}
	if !isDefault {
		result.Offset = wrapperspb.Int64(start)
	}
	resp.Response = &storagepb.AppendRowsResponse_AppendResult_{AppendResult: result}
	return resp, nil
}

// validator returns the row checker of desc against t's current schema. Callers hold s.mu.
func (s *Server) validator(t *table, desc protoreflect.MessageDescriptor) (*wmsg, error) {
	if t.validators == nil || t.validatorsVersion != t.version {
		t.validators, t.validatorsVersion = map[protoreflect.MessageDescriptor]validated{}, t.version
	}
	if v, ok := t.validators[desc]; ok {
		return v.w, v.err
	}
	w, err := compileWriter(desc, t.meta.Schema.Fields, "")
	t.validators[desc] = validated{w, err}
	return w, err
}

type bqField = bq.TableFieldSchema

type validated struct {
	w   *wmsg
	err error
}

// storageSchema converts a REST schema to the Storage API's TableSchema.
func storageSchema(fields []*bqField) *storagepb.TableSchema {
	return &storagepb.TableSchema{Fields: storageFields(fields)}
}

func storageFields(fields []*bqField) []*storagepb.TableFieldSchema {
	out := make([]*storagepb.TableFieldSchema, 0, len(fields))
	for _, f := range fields {
		typ := storagepb.TableFieldSchema_Type(storagepb.TableFieldSchema_Type_value[normStorageType(f.Type)])
		m := storagepb.TableFieldSchema_Mode(storagepb.TableFieldSchema_Mode_value[mode(f.Mode)])
		out = append(out, &storagepb.TableFieldSchema{Name: f.Name, Type: typ, Mode: m, Fields: storageFields(f.Fields)})
	}
	return out
}

func normStorageType(t string) string {
	switch normType(t) {
	case "INTEGER":
		return "INT64"
	case "FLOAT":
		return "DOUBLE"
	case "BOOLEAN":
		return "BOOL"
	case "RECORD":
		return "STRUCT"
	}
	return normType(t)
}
