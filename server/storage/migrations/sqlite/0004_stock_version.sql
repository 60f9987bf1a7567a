-- A token per SKU that changes with every write of any of its stock rows, so servers can cache
-- what they compute from all of a SKU's rows (its totals per membership class) and know when
-- their copy is stale (server/storage/network_cache.py). Tokens are random, not counted, so a
-- token seen inside a transaction that rolled back is never reused by a later commit.
CREATE TABLE stock_version (
    sku     TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO stock_version (sku, version) SELECT DISTINCT sku, random() FROM stock;

CREATE TRIGGER stock_version_on_insert AFTER INSERT ON stock
BEGIN
    INSERT INTO stock_version (sku, version) VALUES (NEW.sku, random())
    ON CONFLICT (sku) DO UPDATE SET version = excluded.version;
END;

CREATE TRIGGER stock_version_on_update AFTER UPDATE ON stock
BEGIN
    INSERT INTO stock_version (sku, version) VALUES (NEW.sku, random())
    ON CONFLICT (sku) DO UPDATE SET version = excluded.version;
END;
