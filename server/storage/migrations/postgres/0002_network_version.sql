-- A counter every location or group change increments in its own transaction, so servers can
-- cache the network and know when their copy is stale (server/storage/network_cache.py).
CREATE TABLE network_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);

INSERT INTO network_version (id, version) VALUES (1, 0);
