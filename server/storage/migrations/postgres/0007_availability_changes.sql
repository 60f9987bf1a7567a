-- The change log (the availability feed): every availability record a write changed, as it is
-- after the write, appended in the write's own transaction (an outbox). Concurrent writers
-- commit in any order, so a number taken at insert (`id`) could become visible after a larger
-- one; `seq` is given later, by one sequencer at a time (change_log_state is its lock), to the
-- entries already committed, in id order. A reader of seq therefore never sees a later entry
-- before an earlier one, and writers of one SKU, which take turns, keep their order.
CREATE TABLE availability_changes (
    id             BIGSERIAL PRIMARY KEY,
    seq            BIGINT UNIQUE,
    commit_us      BIGINT   NOT NULL,
    sku            TEXT COLLATE "C" NOT NULL,
    place_kind     SMALLINT NOT NULL,
    place_id       TEXT COLLATE "C" NOT NULL,
    present        SMALLINT NOT NULL,
    on_hand        BIGINT   NOT NULL,
    reserved       BIGINT   NOT NULL,
    group_reserved BIGINT   NOT NULL,
    safety_stock   BIGINT   NOT NULL,
    futures        TEXT     NOT NULL,
    futures_total  BIGINT   NOT NULL,
    atf            BIGINT   NOT NULL,
    ato            BIGINT   NOT NULL,
    effective_us   BIGINT
);

CREATE INDEX availability_changes_unsequenced ON availability_changes (id) WHERE seq IS NULL;
CREATE INDEX availability_changes_by_age ON availability_changes (commit_us);

CREATE TABLE change_log_state (
    id             SMALLINT PRIMARY KEY CHECK (id = 1),
    pruned_through BIGINT NOT NULL,
    last_seq       BIGINT NOT NULL
);
INSERT INTO change_log_state (id, pruned_through, last_seq) VALUES (1, 0, 0);
