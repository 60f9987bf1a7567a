"""What every RPC leaves behind: one server interceptor times each unary call and reads its
status code and ErrorInfo reason, then hands the record to the access log and the Prometheus
metrics. Streams (health Watch, reflection) pass through untimed."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from omniroute.routing.v1 import routing_pb2 as rt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.transport.caller import CALLER
from server.transport.transactions import RETRIES

access = logging.getLogger("omniroute.access")
_STATUS_DETAILS = "grpc-status-details-bin"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class Call:
    """One finished RPC, as the log and the metrics see it (never its credentials)."""

    method: str  # "Service/Method", the package left out
    code: str  # grpc.StatusCode name
    reason: str  # the ErrorInfo reason of a refusal, or ""
    duration_s: float
    peer: str
    key_id: str  # the caller's API key id ("" without auth)
    request_id: str
    response: Message | None


class Sink(Protocol):
    def started(self, method: str) -> None: ...

    def finished(self, call: Call) -> None: ...


class Telemetry(grpc.aio.ServerInterceptor):
    """Times every unary RPC and reports it to each sink."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = tuple(sinks)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or not self.sinks:
            return handler
        method = handler_call_details.method.rpartition(".")[2]
        behavior: Any = handler.unary_unary  # a coroutine function on the aio server

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            for sink in self.sinks:
                sink.started(method)
            started = time.perf_counter()
            code, response = grpc.StatusCode.OK, None
            try:
                response = await behavior(request, context)
                return response
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except BaseException:
                code = grpc.StatusCode.UNKNOWN
                raise
            finally:
                call = Call(
                    method,
                    code.name,
                    _reason(context) if code is not grpc.StatusCode.OK else "",
                    time.perf_counter() - started,
                    context.peer(),
                    caller.key_id if (caller := CALLER.get()) else "",
                    str(getattr(request, "request_id", "")),
                    response,
                )
                for sink in self.sinks:
                    sink.finished(call)

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _reason(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The ErrorInfo reason our errors carry in their status details ("" if none)."""
    for key, value in context.trailing_metadata() or ():
        if key == _STATUS_DETAILS and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return ""


class AccessLog:
    """One log line per RPC: method, code, reason, duration, peer, key id and request id."""

    def started(self, method: str) -> None:
        pass

    def finished(self, call: Call) -> None:
        access.info(
            "%s %s %.1f ms",
            call.method,
            call.code,
            call.duration_s * 1000,
            extra={
                "method": call.method,
                "code": call.code,
                "reason": call.reason,
                "duration_ms": round(call.duration_s * 1000, 3),
                "peer": call.peer,
                "key_id": call.key_id,
                "request_id": call.request_id,
            },
        )


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (one per server)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ours = "omniroute"
        self.rpcs = Counter(
            "rpcs", "RPCs finished, by method, status code and ErrorInfo reason",
            ["method", "code", "reason"], namespace=ours, registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "rpc_duration_seconds", "RPC latency in the server, by method",
            ["method"], namespace=ours, registry=registry, buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.in_flight = Gauge(
            "rpcs_in_flight", "RPCs being served now", namespace=ours, registry=registry
        )
        self.solve = Histogram(
            "route_order_solve_seconds", "RouteOrder's solve time, by the method of its plan",
            ["method"], namespace=ours, registry=registry, buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.plans = Counter(
            "route_order_plans", "RouteOrder plans, by whether they were proven optimal",
            ["proven"], namespace=ours, registry=registry,
        )  # fmt: skip
        self.attempts = Counter(
            "route_order_attempts", "RouteOrder solves, re-solves after a stale plan included",
            namespace=ours, registry=registry,
        )  # fmt: skip
        build = Info("build", "The running omniroute", namespace=ours, registry=registry)
        build.info({"version": _version()})
        self.watch(lambda: {f"store_retries_{k.lower()}_total": n for k, n in RETRIES.items()})

    def watch(self, read: Callable[[], Mapping[str, float]]) -> None:
        """Reports what `read` returns at every scrape, as `omniroute_<name>`: names ending in
        `_total` are counters, the others gauges."""
        self.registry.register(_Readings(read))

    def started(self, method: str) -> None:
        self.in_flight.inc()

    def finished(self, call: Call) -> None:
        self.in_flight.dec()
        self.rpcs.labels(call.method, call.code, call.reason).inc()
        self.latency.labels(call.method).observe(call.duration_s)
        if isinstance(call.response, rt.RouteOrderResponse):
            stats = call.response.stats
            self.solve.labels(stats.method).observe(stats.solve_time.ToTimedelta().total_seconds())
            self.plans.labels(str(call.response.plan.proven_optimal).lower()).inc()
            self.attempts.inc(stats.attempts)


class _Readings(Collector):
    def __init__(self, read: Callable[[], Mapping[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        for name, value in self.read().items():
            if name.endswith("_total"):
                yield CounterMetricFamily(f"omniroute_{name.removesuffix('_total')}", name, value)
            else:
                yield GaugeMetricFamily(f"omniroute_{name}", name, value)


def _version() -> str:
    try:
        return metadata.version("omniroute")
    except metadata.PackageNotFoundError:
        return "unknown"


def serve_metrics(address: str, metrics: Metrics) -> Any:
    """Serves `metrics` over HTTP at `host:port` (port 0: any free one) on a thread of its own;
    returns the HTTP server (`server_port`, `shutdown()`). Raises OSError if it cannot bind."""
    host, _, port = address.rpartition(":")
    httpd, _thread = start_http_server(int(port), host.strip("[]") or "0.0.0.0", metrics.registry)
    return httpd
