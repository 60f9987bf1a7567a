-- Stock movements: every change to stock, reservations and the network, with its cause
-- (server/domain/history.py). Appended in the writing transaction; `seq` orders them.
-- Network changes have sku '' and zero quantities. Pruned by age (`--history-days`).
CREATE TABLE stock_movements (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us          INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    sku            TEXT    NOT NULL,
    place_kind     INTEGER NOT NULL,
    place_id       TEXT    NOT NULL,
    on_hand_delta  INTEGER NOT NULL,
    reserved_delta INTEGER NOT NULL,
    on_hand        INTEGER NOT NULL,
    safety_stock   INTEGER NOT NULL,
    futures_total  INTEGER NOT NULL,
    reserved       INTEGER NOT NULL,
    reservation_id TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    rpc            TEXT    NOT NULL,
    request_id     TEXT    NOT NULL,
    key_id         TEXT    NOT NULL
);

CREATE INDEX stock_movements_by_sku ON stock_movements (sku, seq);
CREATE INDEX stock_movements_by_place ON stock_movements (place_id, seq);
CREATE INDEX stock_movements_by_age ON stock_movements (at_us);

-- Stock records can be deleted (DeleteStock, DeleteLocations): a deletion moves the SKU's token
-- on too (migration 0004), so no server keeps totals that still count the record.
CREATE TRIGGER stock_version_on_delete AFTER DELETE ON stock
BEGIN
    INSERT INTO stock_version (sku, version) VALUES (OLD.sku, random())
    ON CONFLICT (sku) DO UPDATE SET version = excluded.version;
END;
