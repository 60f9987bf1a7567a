"""Storage: the SQLite (embedded) and PostgreSQL (shared) backends of the domain's port."""
