-- A token per SKU that changes with every write of any of its stock rows, so servers can cache
-- what they compute from all of a SKU's rows (its totals per membership class) and know when
-- their copy is stale (server/storage/network_cache.py). Tokens come from a sequence, which
-- never hands out a value twice, so a token seen inside a transaction that rolled back is
-- never reused by a later commit. Writers of one SKU take turns (advisory locks), so the
-- upsert below never waits on another transaction's row.
CREATE TABLE stock_version (
    sku     TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);

CREATE SEQUENCE stock_version_tokens;

INSERT INTO stock_version (sku, version)
SELECT sku, nextval('stock_version_tokens') FROM (SELECT DISTINCT sku FROM stock) AS skus;

CREATE FUNCTION stock_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stock_version (sku, version) VALUES (NEW.sku, nextval('stock_version_tokens'))
    ON CONFLICT (sku) DO UPDATE SET version = excluded.version;
    RETURN NULL;
END
$$;

CREATE TRIGGER stock_version_bump AFTER INSERT OR UPDATE ON stock
FOR EACH ROW EXECUTE FUNCTION stock_version_bump();
