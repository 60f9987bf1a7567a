"""API keys as an operator meets them: `omniroute keys` against a running server and on the store
(the first key of a server that requires auth), the key never in any log line or output but the
one that shows it at creation, and, on PostgreSQL, a key made through one server accepted by
another and its revocation seen there too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from server.domain.access import parse as parse_key
from tests.api.test_auth import list_locations
from tests.api.test_tls import tls_flags
from tests.postgres.cluster import servers
from tests.support import wait_until
from tests.support.certs import Authority
from tests.support.process import REPO, ServerProcess

pytestmark = pytest.mark.timeout(180)


def keys(*args: str, key: str = "") -> subprocess.CompletedProcess[str]:
    """`omniroute keys ARGS`, bounded; the admin key comes from the environment."""
    env = {"OMNIROUTE_API_KEY": key} if key else {}
    return subprocess.run(
        [sys.executable, "-m", "server", "keys", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def test_keys_made_listed_and_revoked_from_the_command_line_never_reach_a_log(tmp_path: Path):
    store = tmp_path / "omniroute.sqlite3"
    flags = ("--require-auth", "--access-log", "--log-format", "json", "--log-level", "DEBUG")
    with ServerProcess(store, *flags, log_dir=tmp_path) as server:
        address = ("--address", server.target)
        refused = keys("list", *address)
        assert refused.returncode == 1
        assert "UNAUTHENTICATED" in refused.stderr

        bootstrap = keys("create", "--role", "admin", "--store", str(store))  # no server asked
        assert bootstrap.returncode == 0, bootstrap.stderr
        admin = bootstrap.stdout.strip()
        assert admin.startswith("omr_")
        assert "shown this once" in bootstrap.stderr
        with grpc.insecure_channel(server.target) as channel:  # it reads keys every second
            assert wait_until(lambda: list_locations(channel, admin) == grpc.StatusCode.OK)

        made = keys("create", "--role", "inventory", "--ttl", "90d", *address, key=admin)
        assert made.returncode == 0, made.stderr
        inventory = made.stdout.strip()
        inventory_id = inventory.split("_")[1]
        with grpc.insecure_channel(server.target) as channel:
            assert list_locations(channel, inventory) == grpc.StatusCode.OK
            wrong = inventory[:-4] + "AAAA"
            assert list_locations(channel, wrong) == grpc.StatusCode.UNAUTHENTICATED

            listed = keys("list", *address, key=admin)
            assert listed.returncode == 0, listed.stderr
            row = next(line for line in listed.stdout.splitlines() if line.startswith(inventory_id))
            assert row.split()[1:3] == ["inventory", inventory_id]

            revoked = keys("revoke", inventory_id, *address, key=admin)
            assert revoked.returncode == 0, revoked.stderr
            assert list_locations(channel, inventory) == grpc.StatusCode.UNAUTHENTICATED
        assert server.terminate(timeout_s=60) == 0
        log = server.log_path.read_text()

    # The whole secret: it may hold "_" itself, and a fragment after the last one can be a
    # single character that any log contains.
    secrets = [parse_key(key)[1] for key in (admin, inventory, wrong)]  # type: ignore[index]
    for secret in secrets:
        assert secret not in log
        assert secret not in listed.stdout + listed.stderr + revoked.stdout + revoked.stderr
    access = [json.loads(line) for line in log.splitlines() if '"omniroute.access"' in line]
    served = [line for line in access if line["method"] == "InventoryService/ListLocations"]
    assert {(line["code"], line["key_id"]) for line in served} >= {
        ("OK", inventory_id),
        ("UNAUTHENTICATED", ""),
    }
    assert {line["reason"] for line in served if line["code"] == "UNAUTHENTICATED"} == {
        "API_KEY_INVALID"
    }


def test_a_key_made_through_one_postgresql_server_works_on_another(postgres_dsn: str):
    with servers(postgres_dsn, 2) as (first, second):
        made = keys("create", "--role", "inventory", "--address", first.target)
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()
        with grpc.insecure_channel(second.target) as channel:
            assert wait_until(
                lambda: list_locations(channel, "") == grpc.StatusCode.UNAUTHENTICATED
            )
            assert list_locations(channel, key) == grpc.StatusCode.OK

            admin = keys("create", "--role", "admin", "--store", postgres_dsn)
            assert admin.returncode == 0, admin.stderr
            with grpc.insecure_channel(first.target) as on_first:  # it reads keys every second
                admin_key = admin.stdout.strip()
                assert wait_until(lambda: list_locations(on_first, admin_key) == grpc.StatusCode.OK)
            revoked = keys("revoke", key.split("_")[1], "--address", first.target, key=admin_key)
            assert revoked.returncode == 0, revoked.stderr
            assert wait_until(
                lambda: list_locations(channel, key) == grpc.StatusCode.UNAUTHENTICATED
            )


def test_over_tls_the_command_line_makes_a_key_and_call_credentials_send_it(tmp_path: Path):
    authority = Authority(tmp_path, "ca")
    flags = tls_flags(authority.issue("server", server=True))
    with ServerProcess(tmp_path / "omniroute.sqlite3", *flags, log_dir=tmp_path) as server:
        tls = ("--address", server.target, "--tls-ca", str(authority.cert))
        made = keys("create", "--role", "inventory", *tls)
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip()

        credentials = grpc.ssl_channel_credentials(root_certificates=authority.pem)
        with_key = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(key)
        )
        with grpc.secure_channel(server.target, with_key) as channel:
            assert (
                list_locations(channel, "") == grpc.StatusCode.OK
            )  # the key goes with the channel
        with grpc.secure_channel(server.target, credentials) as channel:
            assert list_locations(channel, "") == grpc.StatusCode.UNAUTHENTICATED
