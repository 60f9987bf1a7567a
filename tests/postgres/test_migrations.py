"""Versioned schema migrations on PostgreSQL: applied at start and by `omniroute migrate`, once
even when several servers start together on an empty schema, and a schema newer than this
omniroute knows is refused with a message naming both versions."""

from __future__ import annotations

import subprocess
import sys
import uuid

import grpc
import psycopg
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv

from server.storage import migrations
from server.storage.postgres import PostgresStore
from tests.postgres.cluster import TABLES, backends, server_dsn, servers
from tests.support import wait_until
from tests.support.process import REPO

KNOWN = [migration.version for migration in migrations.migrations("postgres")]


def applied(dsn: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT version, applied_at::text FROM schema_migrations ORDER BY version"
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    return {row[0] for row in rows}


def run_server(dsn: str, *command: str) -> subprocess.CompletedProcess[str]:
    """`python -m server COMMAND --store DSN` to completion (subprocess.run kills it on timeout)."""
    return subprocess.run(
        [sys.executable, "-m", "server", *command, "--store", dsn],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_server_migrates_a_fresh_schema_at_start(postgres_dsn: str) -> None:
    assert tables(postgres_dsn) == set()
    with servers(postgres_dsn, 1) as running:
        assert [version for version, _ in applied(postgres_dsn)] == KNOWN
        assert set(TABLES) | {"schema_migrations"} <= tables(postgres_dsn)
        running[0].inventory.ListLocations(inv.ListLocationsRequest(), timeout=20)


def test_migrate_applies_the_migrations_and_exits(postgres_dsn: str) -> None:
    first = run_server(postgres_dsn, "migrate")
    assert first.returncode == 0, first.stderr
    assert "listening" not in first.stdout
    done = applied(postgres_dsn)
    assert [version for version, _ in done] == KNOWN
    again = run_server(postgres_dsn, "migrate")
    assert again.returncode == 0, again.stderr
    assert applied(postgres_dsn) == done, "a second run applied something again"


def test_a_schema_newer_than_this_server_knows_is_refused(postgres_dsn: str) -> None:
    future = KNOWN[-1] + 1000
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        connection.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (%s, 'from_the_future')",
            (future,),
        )
    for command in (("serve", "--address", "localhost:0"), ("migrate",)):
        refused = run_server(postgres_dsn, *command)
        assert refused.returncode != 0
        assert "listening" not in refused.stdout
        assert f"at version {future}" in refused.stderr, refused.stderr
        assert f"versions up to {KNOWN[-1]}" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr, "an operator gets a message, not a traceback"
    assert tables(postgres_dsn) == {"schema_migrations"}, "the refused server changed the schema"


def test_a_refused_store_keeps_no_connection_open(postgres_dsn: str) -> None:
    future = KNOWN[-1] + 1
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        connection.execute("INSERT INTO schema_migrations VALUES (%s, 'next')", (future,))
    application = f"omniroute-refused-{uuid.uuid4().hex[:8]}"
    with pytest.raises(migrations.SchemaTooNew, match=f"at version {future}"):
        PostgresStore(server_dsn(postgres_dsn, application_name=application), pool_size=2)
    assert wait_until(lambda: not backends(application), timeout_s=10), backends(application)


def test_servers_starting_together_on_an_empty_schema_all_come_up(postgres_dsn: str) -> None:
    with servers(postgres_dsn, 3, pool_size=2) as running:
        for server in running:
            server.inventory.ListLocations(inv.ListLocationsRequest(), timeout=20)
        assert [version for version, _ in applied(postgres_dsn)] == KNOWN
        with grpc.insecure_channel(running[-1].target) as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
