-- The change log (the availability feed): every availability record a write changed, as it is
-- after the write, appended in the write's own transaction (an outbox). SQLite commits one
-- writer at a time, so the rowid order is the commit order and `seq` is the rowid itself;
-- AUTOINCREMENT never reuses a number, even after the newest entries are pruned.
CREATE TABLE availability_changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_us      INTEGER NOT NULL,
    sku            TEXT    NOT NULL,
    place_kind     INTEGER NOT NULL,
    place_id       TEXT    NOT NULL,
    present        INTEGER NOT NULL,
    on_hand        INTEGER NOT NULL,
    reserved       INTEGER NOT NULL,
    group_reserved INTEGER NOT NULL,
    safety_stock   INTEGER NOT NULL,
    futures        TEXT    NOT NULL,
    futures_total  INTEGER NOT NULL,
    atf            INTEGER NOT NULL,
    ato            INTEGER NOT NULL,
    effective_us   INTEGER
);

CREATE INDEX availability_changes_by_age ON availability_changes (commit_us);

-- The newest sequence number pruned: a token at or before it cannot resume.
CREATE TABLE change_log_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_through INTEGER NOT NULL
);
INSERT INTO change_log_state (id, pruned_through) VALUES (1, 0);
