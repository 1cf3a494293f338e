// Package producer publishes contract events to Kafka the way Switchyard reads them, for Go
// services that already run on Watermill.
//
// A Producer validates every event against its buf.validate rules (protovalidate) before
// anything is sent: an invalid event returns an *InvalidError naming the field paths and rule
// ids, and no event of that call reaches Kafka. Valid events are framed in the topic's
// encoding (Confluent wire format with a schema id from Config or from a Schema Registry,
// raw protobuf, or protojson), keyed from a field, given the standard headers
// (contract.HeaderContract, contract.HeaderEventTime, contract.HeaderProducer) and sent
// through watermill-kafka's Publisher, with the Java client's murmur2 partitioning
// (JavaPartitioner) so that a key lands where a Java or Kafka Streams producer puts it.
//
// Events are the generated Go types of gen/go (or any generated protobuf message): the
// contract is the message's own descriptor, so the rules checked are the rules compiled into
// the program.
package producer
