package bigquery

import (
	"context"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"google.golang.org/grpc"
)

// appendRowsMethod is the Storage Write API's bidirectional append stream.
const appendRowsMethod = "/google.cloud.bigquery.storage.v1.BigQueryWrite/AppendRows"

// namedAppends is a gRPC stream interceptor used on insecure (emulator) connections: it puts
// the write stream's name into every AppendRowsRequest of a connection, not only the first.
// The client library leaves it out of later requests of a single-stream connection, which the
// service allows; bqemulator 1.4.0 then answers "Stream not found" (docs/sinks.md lists its
// gaps). The real service accepts the name on every request (the client's own multiplexing
// mode sends it that way), so this changes nothing else.
func namedAppends(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || method != appendRowsMethod {
		return cs, err
	}
	return &namedAppendStream{ClientStream: cs}, nil
}

type namedAppendStream struct {
	grpc.ClientStream
	stream string // the last write stream named on this connection
}

func (s *namedAppendStream) SendMsg(m any) error {
	if req, ok := m.(*storagepb.AppendRowsRequest); ok {
		if req.GetWriteStream() == "" {
			req.WriteStream = s.stream
		} else {
			s.stream = req.GetWriteStream()
		}
	}
	return s.ClientStream.SendMsg(m)
}
