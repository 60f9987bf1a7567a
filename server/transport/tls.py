"""TLS on the serving port: the certificate and key (and, for mutual TLS, the CA that signs
client certificates) are read from files at start and again on `reload`, which new handshakes
use while open connections keep theirs."""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's certificate chain and key, and the client CA for mutual TLS."""

    cert: Path
    key: Path
    client_ca: Path | None = None


class ServerTls:
    """The port's credentials, whose certificate `reload` replaces without a restart."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._initial = self._read()  # unreadable files fail here, at start
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._lock = threading.Lock()

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self._fetch,  # type: ignore[arg-type]  # grpc documents None as "no change"
            require_client_authentication=self.files.client_ca is not None,
        )

    def reload(self) -> None:
        """Reads the files again; if they cannot be read the current certificate stays."""
        try:
            configuration = self._read()
        except OSError as error:
            log.error("TLS files not reloaded, the current certificate stays: %s", error)
            return
        with self._lock:
            self._pending = configuration
        log.info("TLS certificate reloaded from %s", self.files.cert)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before a handshake: the new configuration once, then None (no change)."""
        with self._lock:
            configuration, self._pending = self._pending, None
        return configuration

    def _read(self) -> grpc.ServerCertificateConfiguration:
        files = self.files
        client_ca = files.client_ca.read_bytes() if files.client_ca else None
        return grpc.ssl_server_certificate_configuration(
            [(files.key.read_bytes(), files.cert.read_bytes())], root_certificates=client_ca
        )


def is_loopback(address: str) -> bool:
    """Whether `host:port` listens only on this machine (localhost, 127.0.0.0/8, ::1)."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
