"""Opens the store a `--store` value names: a PostgreSQL DSN, or a SQLite file path."""

from __future__ import annotations

from pathlib import Path

from server.domain.port import Store


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def open_store(target: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8) -> Store:
    if is_postgres(target):
        from server.storage.postgres import PostgresStore  # noqa: PLC0415 - only when used

        return PostgresStore(target, pool_size=pool_size)
    from server.storage.sqlite import SqliteStore  # noqa: PLC0415

    path = Path(target.removeprefix("sqlite://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteStore(path, synchronous=sqlite_synchronous)
