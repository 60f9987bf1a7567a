"""Embedded store: one SQLite file in WAL mode, for one server process."""

from server.storage.sqlite.connection import SYNCHRONOUS_MODES
from server.storage.sqlite.store import SqliteStore

__all__ = ["SYNCHRONOUS_MODES", "SqliteStore"]
