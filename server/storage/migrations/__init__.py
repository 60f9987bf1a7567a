"""Versioned schema migrations, one SQL file per version and dialect (`NNNN_name.sql`).

Servers apply what is missing at start; a database whose schema is newer than any file here
was written by a newer omniroute and is refused rather than misread."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


class SchemaTooNew(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    folder = resources.files(__package__) / dialect
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append(Migration(int(version), name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda migration: migration.version)


def pending(dialect: str, current: int) -> list[Migration]:
    """Migrations newer than `current`; raises SchemaTooNew if `current` is unknown here."""
    known = migrations(dialect)
    latest = known[-1].version if known else 0
    if current > latest:
        raise SchemaTooNew(
            f"the database schema is at version {current} but this omniroute knows versions up "
            f"to {latest}: upgrade omniroute before starting it against this database"
        )
    return [migration for migration in known if migration.version > current]
