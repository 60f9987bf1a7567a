-- API keys (server/domain/access.py): only a salted scrypt hash of each secret. Rows are never
-- deleted: a revoked key keeps its row, so that revoking every key cannot turn auth off.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    description  TEXT NOT NULL,
    hash         TEXT NOT NULL,
    created_us   INTEGER NOT NULL,
    expires_us   INTEGER,
    revoked_us   INTEGER,
    last_used_us INTEGER
) WITHOUT ROWID;
