"""TLS on the serving port, through the real server process: plaintext clients are refused, TLS
and mutual-TLS clients are served, SIGHUP serves a new certificate without dropping open
connections, and plaintext on an address other machines reach needs --insecure."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.api.helpers import RPC_TIMEOUT_S
from tests.support import wait_until
from tests.support.certs import Authority, Issued
from tests.support.process import REPO, ServerProcess

pytestmark = pytest.mark.timeout(180)
SERVING = health_pb2.HealthCheckResponse.SERVING


def tls_flags(server: Issued, client_ca: Authority | None = None) -> list[str]:
    flags = ["--tls-cert", str(server.cert), "--tls-key", str(server.key)]
    return flags + (["--tls-client-ca", str(client_ca.cert)] if client_ca else [])


def tls_channel(target: str, trusted: Authority, client: Issued | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=trusted.pem,
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )
    return grpc.secure_channel(target, credentials)


def health(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest(service="")
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=RPC_TIMEOUT_S).status


def refused(channel: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as failure:
        health(channel)
    return failure.value.code()  # type: ignore[no-any-return]


def test_a_tls_port_serves_tls_clients_and_refuses_plaintext_ones(tmp_path: Path):
    authority = Authority(tmp_path, "ca")
    flags = tls_flags(authority.issue("server", server=True))

    with ServerProcess(tmp_path / "omniroute.sqlite3", *flags, log_dir=tmp_path) as server:
        with tls_channel(server.target, authority) as secure:
            assert health(secure) == SERVING
        with grpc.insecure_channel(server.target) as plaintext:
            assert refused(plaintext) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_serves_only_clients_with_a_certificate_its_ca_signed(tmp_path: Path):
    servers, clients, strangers = (Authority(tmp_path, name) for name in ("srv", "cli", "other"))
    flags = tls_flags(servers.issue("server", server=True), client_ca=clients)
    store = tmp_path / "omniroute.sqlite3"

    with ServerProcess(store, *flags, log_dir=tmp_path) as server:
        with tls_channel(server.target, servers, clients.issue("app", server=False)) as known:
            assert health(known) == SERVING
        with tls_channel(server.target, servers) as anonymous:
            assert refused(anonymous) == grpc.StatusCode.UNAVAILABLE
        with tls_channel(server.target, servers, strangers.issue("app", server=False)) as other:
            assert refused(other) == grpc.StatusCode.UNAVAILABLE


def test_sighup_serves_a_new_certificate_and_keeps_open_connections(tmp_path: Path):
    old, new = Authority(tmp_path, "old"), Authority(tmp_path, "new")
    served = old.issue("server", server=True)
    replacement = new.issue("server", server=True)

    with ServerProcess(tmp_path / "x.sqlite3", *tls_flags(served), log_dir=tmp_path) as server:
        with tls_channel(server.target, old) as open_before:
            assert health(open_before) == SERVING
            served.cert.write_bytes(replacement.cert.read_bytes())
            served.key.write_bytes(replacement.key.read_bytes())
            server.process.send_signal(signal.SIGHUP)

            def new_certificate_served() -> bool:
                with tls_channel(server.target, new) as trusting_new:
                    try:
                        return health(trusting_new) == SERVING
                    except grpc.RpcError:
                        return False

            assert wait_until(new_certificate_served, timeout_s=30)
            assert health(open_before) == SERVING, "the reload dropped an open connection"
            with tls_channel(server.target, old) as trusting_old:
                assert refused(trusting_old) == grpc.StatusCode.UNAVAILABLE
        assert server.process.poll() is None, "SIGHUP stopped the server"


def serve(*flags: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m server serve FLAGS` that should refuse to start, bounded."""
    return subprocess.run(
        [sys.executable, "-m", "server", "serve", "--store", str(cwd / "x.sqlite3"), *flags],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0"])
def test_plaintext_on_an_address_other_machines_reach_is_refused_without_insecure(
    tmp_path: Path, address: str
):
    started = serve("--address", address, cwd=tmp_path)

    assert started.returncode == 2
    assert "--tls-cert" in started.stderr
    assert "--insecure" in started.stderr
    assert "listening" not in started.stdout


def test_insecure_serves_plaintext_on_every_interface(tmp_path: Path):
    # After the launcher's own --address localhost:0, so this address wins.
    flags = ("--address", "0.0.0.0:0", "--insecure")

    with ServerProcess(tmp_path / "omniroute.sqlite3", *flags, log_dir=tmp_path) as server:
        assert health(server.channel) == SERVING


def test_unreadable_tls_files_are_refused_at_start(tmp_path: Path):
    missing = tmp_path / "missing.pem"

    started = serve("--tls-cert", str(missing), "--tls-key", str(missing), cwd=tmp_path)

    assert started.returncode == 2
    assert "cannot read the TLS files" in started.stderr
