"""Standard gRPC health checking (grpc_health), with one fix for shutdown.

grpc_health's servicer sends Watch updates while holding its lock. When a watcher hangs up at
that moment, gRPC's polling thread runs the stream's close callback, which needs the same lock,
while the send waits for that very thread to finish the write: `enter_graceful_shutdown` then
never returns (seen in tests/api/test_server.py, about one stop in five). This subclass
snapshots the watchers under the lock and sends outside it. It relies on grpc_health's private
fields, which are pinned with grpcio-health-checking in pyproject.toml."""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health, health_pb2


class HealthServicer(health.HealthServicer):
    def set(self, service: str, status: Any) -> None:
        inner: Any = self  # grpc_health's private state, not in its type stubs
        with inner._lock:
            if inner._gracefully_shutting_down:
                return
            inner._server_status[service] = status
            watchers = list(inner._send_response_callbacks.get(service, ()))
        for send in watchers:  # a watcher that hung up meanwhile ignores the update
            send(health_pb2.HealthCheckResponse(status=status))

    def enter_graceful_shutdown(self) -> None:
        """Permanently reports NOT_SERVING for every service."""
        inner: Any = self
        with inner._lock:
            services = list(inner._server_status)
        for service in services:
            self.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        with inner._lock:
            inner._gracefully_shutting_down = True
