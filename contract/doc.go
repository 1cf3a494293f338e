// Package contract is Switchyard's contract registry: it loads Protobuf contracts, decodes
// event payloads against them and validates the result with protovalidate rules.
//
// The life of an event through this package:
//
//	reg, err := contract.Load("contracts/")             // once, at start-up
//	c, err := reg.Lookup("auctions.v1.BidPlaced")       // once per pipeline; compiles parser + rules
//	dec := c.NewDecoder(contract.Confluent)             // once per goroutine
//	dec.CheckSchemas(schemas)                           // optional: accepted schema ids, a registry
//	for each batch {
//	    for each record {
//	        msg, err := dec.Decode(record.Value)         // *DecodeError: dead-letter ("framing" or "decode");
//	                                                     // *RegistryError: retry the batch later
//	        err = c.Validate(msg)                        // *ValidationError: dead-letter, reason "validate"
//	        ... route msg, write it to sinks ...
//	    }
//	    dec.Release()                                    // every msg of the batch is now invalid
//	}
//
// Binary payloads (Confluent and Raw) are parsed by hyperpb into arena-backed, read-only
// messages; JSON payloads are parsed by protojson into dynamicpb messages. Both satisfy
// protoreflect.Message, so routing, validation and sinks do not care which they get.
//
// Well-known types (google/protobuf/*.proto) and buf/validate/validate.proto always
// resolve to the descriptors compiled into the binary, whatever copies a contracts
// directory or descriptor set carries, so the rules a contract declares are exactly the
// rules the linked protovalidate version enforces.
package contract
