-- Stock movements: every change to stock, reservations and the network, with its cause
-- (server/domain/history.py). Appended in the writing transaction; `seq` orders them, taken at
-- insert (so a movement committing late may carry a number below one already read).
-- Network changes have sku '' and zero quantities. Pruned by age (`--history-days`).
CREATE TABLE stock_movements (
    seq            BIGSERIAL PRIMARY KEY,
    at_us          BIGINT   NOT NULL,
    kind           SMALLINT NOT NULL,
    sku            TEXT COLLATE "C" NOT NULL,
    place_kind     SMALLINT NOT NULL,
    place_id       TEXT COLLATE "C" NOT NULL,
    on_hand_delta  BIGINT   NOT NULL,
    reserved_delta BIGINT   NOT NULL,
    on_hand        BIGINT   NOT NULL,
    safety_stock   BIGINT   NOT NULL,
    futures_total  BIGINT   NOT NULL,
    reserved       BIGINT   NOT NULL,
    reservation_id TEXT     NOT NULL,
    reason         TEXT     NOT NULL,
    rpc            TEXT     NOT NULL,
    request_id     TEXT     NOT NULL,
    key_id         TEXT     NOT NULL
);

CREATE INDEX stock_movements_by_sku ON stock_movements (sku, seq);
CREATE INDEX stock_movements_by_place ON stock_movements (place_id, seq);
CREATE INDEX stock_movements_by_age ON stock_movements (at_us);

-- Stock records can be deleted (DeleteStock, DeleteLocations): a deletion moves the SKU's token
-- on too (migration 0004), so no server keeps totals that still count the record.
CREATE FUNCTION stock_version_bump_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stock_version (sku, version) VALUES (OLD.sku, nextval('stock_version_tokens'))
    ON CONFLICT (sku) DO UPDATE SET version = excluded.version;
    RETURN NULL;
END
$$;

CREATE TRIGGER stock_version_bump_deleted AFTER DELETE ON stock
FOR EACH ROW EXECUTE FUNCTION stock_version_bump_deleted();
