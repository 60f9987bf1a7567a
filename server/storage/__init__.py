"""Storage: one contract (`contract.py`), two backends (SQLite embedded, PostgreSQL shared)."""
