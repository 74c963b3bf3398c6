#!/usr/bin/python3
"""Calls any gateway RPC with a JSON request and prints the JSON reply (or the error and its
google.rpc details).

    /usr/bin/python3 tools/call.py 127.0.0.1:8080 respondio.v2.ContactService/GetContact \
        '{"identifier": "id:12345"}'

Compiles proto/ with grpc_tools into a temporary directory on each run, so it needs nothing but
Debian's python3-grpcio and protobuf-compiler.
"""
import glob
import importlib
import json
import os
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import json_format, symbol_database

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "proto")


def compile_protos(out_dir):
    # Debian's protoc (3.21) rather than grpc_tools' bundled 3.5, which predates proto3 optional.
    files = sorted(glob.glob(os.path.join(PROTO_ROOT, "**", "*.proto"), recursive=True))
    args = ["protoc", f"-I{PROTO_ROOT}", "-I/usr/include", f"--python_out={out_dir}"]
    if subprocess.run(args + files).returncode != 0:
        sys.exit("call.py: cannot compile the protos (is protobuf-compiler installed?)")
    sys.path.insert(0, out_dir)
    for f in files:
        module = os.path.relpath(f, PROTO_ROOT)[:-len(".proto")].replace("/", ".") + "_pb2"
        importlib.import_module(module)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    target, method, request_json = sys.argv[1:]
    service_name, method_name = method.strip("/").split("/")
    with tempfile.TemporaryDirectory() as out_dir:
        compile_protos(out_dir)
        pool = symbol_database.Default().pool
        service = pool.FindServiceByName(service_name)
        rpc = service.methods_by_name[method_name]
        request_cls = symbol_database.Default().GetSymbol(rpc.input_type.full_name)
        reply_cls = symbol_database.Default().GetSymbol(rpc.output_type.full_name)
        request = json_format.Parse(request_json, request_cls())
        channel = grpc.insecure_channel(target)
        call = channel.unary_unary(f"/{service_name}/{method_name}",
                                   request_serializer=request_cls.SerializeToString,
                                   response_deserializer=reply_cls.FromString)
        try:
            reply = call(request, timeout=30)
        except grpc.RpcError as e:
            print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
            for key, value in e.trailing_metadata() or ():
                if key == "grpc-status-details-bin":
                    print(f"details: {len(value)} bytes of google.rpc.Status", file=sys.stderr)
            sys.exit(1)
        print(json_format.MessageToJson(reply))


if __name__ == "__main__":
    main()
