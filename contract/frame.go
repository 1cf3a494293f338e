package contract

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// frameSchema is what a Decoder checks Confluent frames against for one schema: the
// message-index path the contract's message has in it, pre-encoded as FrameConfluent writes
// it, and the schema's message tree, to name what another path selects.
type frameSchema struct {
	want    []int  // the contract's message-index path in this schema
	wantEnc []byte // want as FrameConfluent encodes it ([0] as the single byte 0)
	// where names the schema in messages: the .proto file of the contract, or the
	// registry's schema id.
	where string
	tree  []msgNode
}

// msgNode is a message of a schema, with its nested messages in declaration order (the
// order message indexes count in).
type msgNode struct {
	name   string // full name
	nested []msgNode
}

func newFrameSchema(want []int, where string, tree []msgNode) *frameSchema {
	return &frameSchema{want: want, wantEnc: encodeIndexes(nil, want), where: where, tree: tree}
}

// localFrameSchema is the frame schema of c's own .proto file.
func localFrameSchema(c *Contract) *frameSchema {
	return newFrameSchema(c.indexes, c.desc.ParentFile().Path(), treeOf(c.desc.ParentFile().Messages()))
}

func treeOf(ms protoreflect.MessageDescriptors) []msgNode {
	out := make([]msgNode, ms.Len())
	for i := range ms.Len() {
		out[i] = msgNode{name: string(ms.Get(i).FullName()), nested: treeOf(ms.Get(i).Messages())}
	}
	return out
}

// treeOfProto is treeOf for a parsed, unlinked file (a registry's schema text).
func treeOfProto(prefix string, ms []*descriptorpb.DescriptorProto) []msgNode {
	out := make([]msgNode, len(ms))
	for i, m := range ms {
		name := m.GetName()
		if prefix != "" {
			name = prefix + "." + name
		}
		out[i] = msgNode{name: name, nested: treeOfProto(name, m.GetNestedType())}
	}
	return out
}

// pathOf returns the message-index path of the message named full in tree, or nil.
func pathOf(tree []msgNode, full string) []int {
	for i, n := range tree {
		if n.name == full {
			return []int{i}
		}
		if strings.HasPrefix(full, n.name+".") {
			if p := pathOf(n.nested, full); p != nil {
				return append([]int{i}, p...)
			}
		}
	}
	return nil
}

// nameAt returns the full name of the message at path in tree, or "" when the path is out
// of range.
func nameAt(tree []msgNode, path []int) string {
	name := ""
	for _, i := range path {
		if i < 0 || i >= len(tree) {
			return ""
		}
		name, tree = tree[i].name, tree[i].nested
	}
	return name
}

// names lists the full names of every message in tree, depth first.
func names(tree []msgNode) []string {
	var out []string
	for _, n := range tree {
		out = append(out, n.name)
		out = append(out, names(n.nested)...)
	}
	return out
}

// encodeIndexes appends the Confluent encoding of a message-index path to dst.
func encodeIndexes(dst []byte, indexes []int) []byte {
	if len(indexes) == 0 || (len(indexes) == 1 && indexes[0] == 0) {
		return append(dst, 0)
	}
	dst = protowire.AppendVarint(dst, protowire.EncodeZigZag(int64(len(indexes))))
	for _, i := range indexes {
		dst = protowire.AppendVarint(dst, protowire.EncodeZigZag(int64(i)))
	}
	return dst
}

// checkFrame checks the Confluent header of payload against the decoder's contract and
// schema-id policy and returns the protobuf body. The common case, a frame carrying the
// schema id of the previous one and the expected index path in its canonical encoding, is
// a comparison of a few bytes and allocates nothing.
func (d *Decoder) checkFrame(payload []byte) ([]byte, error) {
	if len(payload) < 6 || payload[0] != confluentMagic {
		_, _, _, err := splitConfluent(payload, nil)
		return nil, err
	}
	fs := d.c.frame
	if d.schemas != nil {
		id := binary.BigEndian.Uint32(payload[1:5])
		if d.lastFrame == nil || id != d.lastID {
			f, err := d.schemas.frameSchema(d.c, id)
			if err != nil {
				return nil, err
			}
			d.lastID, d.lastFrame = id, f
		}
		fs = d.lastFrame
	}
	rest := payload[5:]
	if bytes.HasPrefix(rest, fs.wantEnc) {
		return rest[len(fs.wantEnc):], nil
	}
	return fs.mismatch(payload, d.c)
}

// mismatch handles a frame whose index path is not the expected bytes: a path written
// another way (e.g. [0] as count 1, index 0) is accepted, anything else is a framing error
// saying what the path selects.
func (fs *frameSchema) mismatch(payload []byte, c *Contract) ([]byte, error) {
	id, got, body, err := splitConfluent(payload, make([]int, 0, 4))
	if err != nil {
		return nil, err
	}
	if slices.Equal(got, fs.want) {
		return body, nil
	}
	var msg string
	switch name := nameAt(fs.tree, got); {
	case name == "":
		msg = fmt.Sprintf("message index %s is out of range in %s", formatIndexes(got), fs.where)
	default:
		msg = fmt.Sprintf("message index %s selects %s", formatIndexes(got), name)
	}
	return nil, &DecodeError{Reason: ReasonFraming, Err: fmt.Errorf("%s (schema id %d), want %s for %s", msg, id, formatIndexes(fs.want), c.Name())}
}

// formatIndexes renders a message-index path as "[1,3]".
func formatIndexes(p []int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, x := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(x))
	}
	b.WriteByte(']')
	return b.String()
}
