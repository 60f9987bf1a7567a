-- The network, stock, reservations and remembered responses. Times are microseconds since the
-- Unix epoch (UTC). `stock.reserved` and `group_reserved.reserved` are counters kept equal to
-- the sum of open reservation lines at the place (the ledger's invariant). Identifiers use the
-- "C" collation so that ordering (and so pagination) is bytewise, as on SQLite.
CREATE TABLE locations (
    id            TEXT COLLATE "C" PRIMARY KEY,
    display_name  TEXT             NOT NULL,
    type          SMALLINT         NOT NULL,
    latitude      DOUBLE PRECISION NOT NULL,
    longitude     DOUBLE PRECISION NOT NULL,
    postal_code   TEXT             NOT NULL,
    country_code  TEXT             NOT NULL,
    ship_enabled  SMALLINT         NOT NULL,
    shipment_cost DOUBLE PRECISION NOT NULL,
    priority      INTEGER          NOT NULL
);

CREATE TABLE location_groups (
    id           TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT NOT NULL
);

CREATE TABLE group_members (
    group_id    TEXT COLLATE "C" NOT NULL REFERENCES location_groups (id),
    location_id TEXT COLLATE "C" NOT NULL REFERENCES locations (id),
    PRIMARY KEY (group_id, location_id)
);

CREATE TABLE stock (
    sku          TEXT COLLATE "C" NOT NULL,
    location_id  TEXT COLLATE "C" NOT NULL REFERENCES locations (id),
    on_hand      BIGINT NOT NULL CHECK (on_hand >= 0),
    safety_stock BIGINT NOT NULL CHECK (safety_stock >= 0),
    futures      TEXT   NOT NULL,  -- JSON [[quantity, expected_us or null], ...]
    reserved     BIGINT NOT NULL CHECK (reserved >= 0),
    effective_us BIGINT,           -- NULL: never set by the back office
    PRIMARY KEY (sku, location_id)
);

CREATE TABLE group_reserved (
    sku      TEXT COLLATE "C" NOT NULL,
    group_id TEXT COLLATE "C" NOT NULL REFERENCES location_groups (id),
    reserved BIGINT NOT NULL CHECK (reserved > 0),
    PRIMARY KEY (sku, group_id)
);

CREATE INDEX group_reserved_by_group ON group_reserved (group_id);

CREATE TABLE reservations (
    id           TEXT COLLATE "C" PRIMARY KEY,
    external_ref TEXT     NOT NULL,
    state        SMALLINT NOT NULL,  -- 1 active, 2 closed, 3 expired
    create_us    BIGINT   NOT NULL,
    update_us    BIGINT   NOT NULL,
    expire_us    BIGINT
);

CREATE INDEX reservations_due ON reservations (expire_us) WHERE state = 1;

CREATE TABLE reservation_lines (
    reservation_id  TEXT COLLATE "C" NOT NULL REFERENCES reservations (id),
    sku             TEXT COLLATE "C" NOT NULL,
    place_kind      SMALLINT NOT NULL,  -- 1 location, 2 group
    place_id        TEXT COLLATE "C" NOT NULL,
    quantity        BIGINT   NOT NULL,
    fulfilled       BIGINT   NOT NULL,
    released        BIGINT   NOT NULL,
    transferred_out BIGINT   NOT NULL,
    CHECK (fulfilled >= 0 AND released >= 0 AND transferred_out >= 0
           AND fulfilled + released + transferred_out <= quantity),
    PRIMARY KEY (reservation_id, sku, place_kind, place_id)
);

CREATE TABLE remembered_responses (
    request_id  TEXT COLLATE "C" PRIMARY KEY,
    method      TEXT   NOT NULL,
    fingerprint BYTEA  NOT NULL,
    response    BYTEA  NOT NULL,
    create_us   BIGINT NOT NULL
);

CREATE INDEX remembered_responses_by_age ON remembered_responses (create_us);
