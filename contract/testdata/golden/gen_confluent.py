#!/usr/bin/env python3
"""GENERATOR, not run by the tests: frames golden Confluent payloads with confluent-kafka-python.

It serializes events of ../frame/test/v1/frame.proto with confluent_kafka's ProtobufSerializer
against a mock:// Schema Registry and writes each payload, bytes as produced, to
confluent_<name>.bin next to this script; the Go test TestDecode_confluent_golden decodes
them. Re-run it only to regenerate the files:

    python3 -m venv /tmp/ckvenv
    /tmp/ckvenv/bin/pip install confluent-kafka protobuf grpcio-tools requests httpx attrs cachetools authlib googleapis-common-protos
    /tmp/ckvenv/bin/python contract/testdata/golden/gen_confluent.py
"""

import importlib.util
import os
import sys
import tempfile

import confluent_kafka
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "frame")


def main():
    out = tempfile.mkdtemp()
    rc = protoc.main(["protoc", "-I" + PROTO_ROOT, "--python_out=" + out, "test/v1/frame.proto"])
    if rc != 0:
        sys.exit("protoc failed")
    # Load by path: "test" would resolve to Python's own test package.
    spec = importlib.util.spec_from_file_location("frame_pb2", os.path.join(out, "test", "v1", "frame_pb2.py"))
    pb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pb)

    registry = SchemaRegistryClient.new_client({"url": "mock://golden"})  # a MockSchemaRegistryClient
    conf = {"auto.register.schemas": True, "use.deprecated.format": False}

    bid = pb.BidPlaced(bid_id="b-17", amount_cents=4250, lot=pb.BidPlaced.Lot(lot_id="lot-9", tags=["art", "oil"]))
    lot = pb.BidPlaced.Lot(lot_id="lot-3", tags=["coin"])
    other = pb.Other(note="hello")  # the first message of the file: index path [0]

    for name, msg in [("bid_placed", bid), ("bid_placed_lot", lot), ("other", other)]:
        ser = ProtobufSerializer(type(msg), registry, conf)
        data = ser(msg, SerializationContext("golden-" + name, MessageField.VALUE))
        with open(os.path.join(HERE, "confluent_" + name + ".bin"), "wb") as f:
            f.write(data)
        print(name, data.hex())
    print("confluent-kafka", confluent_kafka.version()[0], "libversion", confluent_kafka.libversion()[0])


if __name__ == "__main__":
    main()
