// Package contracts holds the sample data contracts (.proto files, one directory per package)
// and Switchyard's own field options, switchyard/v1/options.proto, which the binary compiles
// in so that contracts importing it load without a copy of their own.
package contracts

import _ "embed"

// OptionsProto is the source of switchyard/v1/options.proto.
//
//go:embed switchyard/v1/options.proto
var OptionsProto []byte
