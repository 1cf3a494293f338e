#!/usr/bin/env python3
"""confluent-kafka-python's side of integration/interop_test.go (code no one here wrote).

    interop.py serialize BOOTSTRAP GO_TOPIC PY_TOPIC EVENT_JSON
        Registers auctions.v1.BidPlaced for GO_TOPIC in a mock:// Schema Registry and prints
        its schema id; serializes EVENT_JSON (protojson of auctions.v1.BidPlaced) for PY_TOPIC,
        and test.v1.BidPlaced (message index [1]) and test.v1.BidPlaced.Lot ([1, 0]) of
        contract/testdata/frame for PY_TOPIC-frame and PY_TOPIC-lot, with ProtobufSerializer,
        and produces them to Kafka. Prints one JSON object: go_schema_id and the payloads (hex).

    interop.py deserialize BOOTSTRAP GO_TOPIC N
        Registers the same schemas in the same order (the mock registry hands out the same
        ids), reads N records of GO_TOPIC from the start and prints, per record, one JSON line
        with what ProtobufDeserializer made of it (registry lookup of the writer schema by the
        frame's id, message index checked against it).

Run with the virtualenv .ci/setup makes (~/.cache/switchyard/pyvenv).
"""

import importlib.util
import json
import os
import sys
import tempfile
import time

import grpc_tools
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import json_format
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
CONTRACTS = os.path.join(ROOT, "contracts")
FRAME = os.path.join(ROOT, "contract", "testdata", "frame")
SERDE = {"auto.register.schemas": True, "use.deprecated.format": False}


def compile_protos():
    out = tempfile.mkdtemp()
    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = []
    for d, _, names in os.walk(CONTRACTS):
        files += [os.path.relpath(os.path.join(d, n), CONTRACTS) for n in names if n.endswith(".proto")]
    if protoc.main(["protoc", "-I" + CONTRACTS, "-I" + wkt, "--python_out=" + out] + sorted(files)) != 0:
        sys.exit("protoc failed on contracts/")
    frame_out = tempfile.mkdtemp()
    if protoc.main(["protoc", "-I" + FRAME, "--python_out=" + frame_out, "test/v1/frame.proto"]) != 0:
        sys.exit("protoc failed on frame.proto")
    sys.path.insert(0, out)
    from auctions.v1 import bid_placed_pb2  # noqa: E402

    # Load by path: "test" would resolve to Python's own test package.
    spec = importlib.util.spec_from_file_location("frame_pb2", os.path.join(frame_out, "test", "v1", "frame_pb2.py"))
    frame = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frame)
    return bid_placed_pb2, frame


def register_go_topic(registry, pb, event, go_topic):
    ser = ProtobufSerializer(pb.BidPlaced, registry, SERDE)
    data = ser(event, SerializationContext(go_topic, MessageField.VALUE))
    return int.from_bytes(data[1:5], "big")


def serialize(bootstrap, go_topic, py_topic, event_json):
    pb, frame = compile_protos()
    registry = SchemaRegistryClient.new_client({"url": "mock://interop"})
    event = json_format.Parse(event_json, pb.BidPlaced())
    go_id = register_go_topic(registry, pb, event, go_topic)

    lot = frame.BidPlaced.Lot(lot_id="lot-3", tags=["coin"])
    fbid = frame.BidPlaced(bid_id="b-17", amount_cents=4250, lot=frame.BidPlaced.Lot(lot_id="lot-9", tags=["art", "oil"]))
    out = {"go_schema_id": go_id, "payloads": {}}
    prod = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for name, topic, msg, key in [
        ("auctions", py_topic, event, event.auction_id),
        ("frame", py_topic + "-frame", fbid, "b-17"),
        ("lot", py_topic + "-lot", lot, "lot-3"),
    ]:
        ser = ProtobufSerializer(type(msg), registry, SERDE)
        data = ser(msg, SerializationContext(topic, MessageField.VALUE))
        prod.produce(topic, value=data, key=key.encode(), headers=[("producer", b"confluent-kafka-python")])
        out["payloads"][name] = data.hex()
    if prod.flush(30) != 0:
        sys.exit("produce: not every record was acknowledged")
    import confluent_kafka

    out["confluent_kafka"] = confluent_kafka.version() + " (librdkafka " + confluent_kafka.libversion()[0] + ")"
    print(json.dumps(out))


def deserialize(bootstrap, go_topic, n):
    pb, _ = compile_protos()
    registry = SchemaRegistryClient.new_client({"url": "mock://interop"})
    # The event only gets the schema registered; its content does not matter here.
    go_id = register_go_topic(registry, pb, pb.BidPlaced(), go_topic)
    deser = ProtobufDeserializer(pb.BidPlaced, {"use.deprecated.format": False}, registry)
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "interop-" + go_topic, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    cons.subscribe([go_topic])
    got = 0
    deadline = time.time() + 60
    try:
        while got < n and time.time() < deadline:
            m = cons.poll(1.0)
            if m is None:
                continue
            if m.error():
                sys.exit("consume: %s" % m.error())
            line = {"partition": m.partition(), "offset": m.offset(), "schema_id": int.from_bytes(m.value()[1:5], "big"), "registered_id": go_id,
                    "key": (m.key() or b"").decode(), "headers": {k: v.decode() for k, v in (m.headers() or [])}}
            try:
                ev = deser(m.value(), SerializationContext(go_topic, MessageField.VALUE))
                line["event"] = json_format.MessageToDict(ev)
            except Exception as e:  # report, do not stop: the Go test says what it expected
                line["error"] = "%s: %s" % (type(e).__name__, e)
            print(json.dumps(line, sort_keys=True), flush=True)
            got += 1
    finally:
        cons.close()
    if got < n:
        sys.exit("read %d of %d records of %s" % (got, n, go_topic))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "serialize":
        serialize(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "deserialize":
        deserialize(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
