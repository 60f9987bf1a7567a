-- The network, stock, reservations and remembered responses. Times are microseconds since the
-- Unix epoch (UTC). `stock.reserved` and `group_reserved.reserved` are counters kept equal to
-- the sum of open reservation lines at the place (the ledger's invariant).
CREATE TABLE locations (
    id            TEXT PRIMARY KEY,
    display_name  TEXT    NOT NULL,
    type          INTEGER NOT NULL,
    latitude      REAL    NOT NULL,
    longitude     REAL    NOT NULL,
    postal_code   TEXT    NOT NULL,
    country_code  TEXT    NOT NULL,
    ship_enabled  INTEGER NOT NULL,
    shipment_cost REAL    NOT NULL,
    priority      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE location_groups (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE group_members (
    group_id    TEXT NOT NULL REFERENCES location_groups (id),
    location_id TEXT NOT NULL REFERENCES locations (id),
    PRIMARY KEY (group_id, location_id)
) WITHOUT ROWID;

CREATE TABLE stock (
    sku           TEXT    NOT NULL,
    location_id   TEXT    NOT NULL REFERENCES locations (id),
    on_hand       INTEGER NOT NULL CHECK (on_hand >= 0),
    safety_stock  INTEGER NOT NULL CHECK (safety_stock >= 0),
    futures       TEXT    NOT NULL,  -- JSON [[quantity, expected_us or null], ...]
    reserved      INTEGER NOT NULL CHECK (reserved >= 0),
    effective_us  INTEGER,           -- NULL: never set by the back office
    PRIMARY KEY (sku, location_id)
) WITHOUT ROWID;

CREATE TABLE group_reserved (
    sku      TEXT    NOT NULL,
    group_id TEXT    NOT NULL REFERENCES location_groups (id),
    reserved INTEGER NOT NULL CHECK (reserved > 0),
    PRIMARY KEY (sku, group_id)
) WITHOUT ROWID;

CREATE INDEX group_reserved_by_group ON group_reserved (group_id);

CREATE TABLE reservations (
    id           TEXT PRIMARY KEY,
    external_ref TEXT    NOT NULL,
    state        INTEGER NOT NULL,  -- 1 active, 2 closed, 3 expired
    create_us    INTEGER NOT NULL,
    update_us    INTEGER NOT NULL,
    expire_us    INTEGER
) WITHOUT ROWID;

CREATE INDEX reservations_due ON reservations (expire_us) WHERE state = 1;

CREATE TABLE reservation_lines (
    reservation_id  TEXT    NOT NULL REFERENCES reservations (id),
    sku             TEXT    NOT NULL,
    place_kind      INTEGER NOT NULL,  -- 1 location, 2 group
    place_id        TEXT    NOT NULL,
    quantity        INTEGER NOT NULL,
    fulfilled       INTEGER NOT NULL,
    released        INTEGER NOT NULL,
    transferred_out INTEGER NOT NULL,
    CHECK (fulfilled >= 0 AND released >= 0 AND transferred_out >= 0
           AND fulfilled + released + transferred_out <= quantity),
    PRIMARY KEY (reservation_id, sku, place_kind, place_id)
) WITHOUT ROWID;

CREATE TABLE remembered_responses (
    request_id  TEXT PRIMARY KEY,
    method      TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    response    BLOB    NOT NULL,
    create_us   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX remembered_responses_by_age ON remembered_responses (create_us);
