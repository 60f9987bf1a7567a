"""Opens the store a `--store` value names: a PostgreSQL DSN, or a SQLite file path."""

from __future__ import annotations

from pathlib import Path

from server.storage.contract import Store
from server.storage.sqlite import SqliteStore


def open_store(target: str, *, sqlite_synchronous: str = "FULL") -> Store:
    if target.startswith(("postgresql://", "postgres://")):
        raise NotImplementedError("the PostgreSQL store is not available yet")
    path = Path(target.removeprefix("sqlite://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteStore(path, synchronous=sqlite_synchronous)
