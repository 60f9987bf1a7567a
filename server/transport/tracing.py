"""Traces through OpenTelemetry: off unless the standard environment asks for them
(`OTEL_TRACES_EXPORTER=otlp|console`, or an `OTEL_EXPORTER_OTLP_*ENDPOINT`); the OTLP exporter
then reads its own `OTEL_EXPORTER_OTLP_*` settings; `OTEL_SERVICE_NAME` names the service
(default omniroute) and `OTEL_RESOURCE_ATTRIBUTES` adds to it. Every RPC gets a server span
(the maintained gRPC instrumentation); RouteOrder's snapshot, solve and commit are spans in it."""

from __future__ import annotations

import os
from collections.abc import Mapping

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

tracer = trace.get_tracer("omniroute")


def exporter_named(environment: Mapping[str, str]) -> str:
    """The exporter the environment asks for: "otlp", "console", or "" (tracing off)."""
    named = environment.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named in ("", "none"):
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        return "otlp" if not named and any(environment.get(e) for e in endpoints) else ""
    if named not in ("otlp", "console"):
        raise ValueError(f"OTEL_TRACES_EXPORTER={named} is not one of otlp, console, none")
    return named


def start(environment: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Installs the tracer provider the environment configures; None when tracing is off."""
    exporter = exporter_named(environment)
    if not exporter:
        return None
    name = environment.get("OTEL_SERVICE_NAME", "omniroute")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def server_interceptor(provider: TracerProvider) -> grpc.aio.ServerInterceptor:
    """A server span per RPC, with the caller's trace context when it sends one."""
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider
    )
    return interceptor
