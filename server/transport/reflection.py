"""Server reflection as both `grpc.reflection.v1` and `v1alpha`: tools that speak only v1 find
the services too. grpcio-reflection, pinned with protobuf 6, serves only v1alpha; v1 is the same
messages under another package, so one servicer answers both, and v1's descriptor is v1alpha's
renamed."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
SERVICE_NAMES = (reflection.SERVICE_NAME, V1_SERVICE_NAME)
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serves reflection over `service_names`, itself (both versions) included."""
    _add_v1_descriptor()
    names = (*service_names, *SERVICE_NAMES)
    servicer = reflection.aio.ReflectionServicer(names)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": info})
            for name in SERVICE_NAMES
        )
    )


def _add_v1_descriptor() -> None:
    """Puts grpc/reflection/v1/reflection.proto in the default pool, so reflection can describe
    its own v1 service."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
    except KeyError:
        pass
    else:
        return
    v1alpha = ".grpc.reflection.v1alpha."
    file = descriptor_pb2.FileDescriptorProto.FromString(reflection_pb2.DESCRIPTOR.serialized_pb)
    file.name, file.package = _V1_FILE, "grpc.reflection.v1"
    file.ClearField("options")
    for message in file.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(v1alpha, ".grpc.reflection.v1.")
    for method in file.service[0].method:
        method.input_type = method.input_type.replace(v1alpha, ".grpc.reflection.v1.")
        method.output_type = method.output_type.replace(v1alpha, ".grpc.reflection.v1.")
    pool.AddSerializedFile(file.SerializeToString())
