"""The gRPC wire format of the split pipeline (package `tuijian.v1` of proto/tuijian/v1/).

`stages_pb2*` are generated from the .proto when the package is built or installed (setup.py)
and never committed: the .proto is the one source of truth.
"""
