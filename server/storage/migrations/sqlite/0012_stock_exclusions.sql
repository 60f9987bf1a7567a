-- A stock record excluded from named groups' availability (OCI's groupEligibilityExclusion):
-- for that SKU the location counts as no member of those groups. Written with the record (a
-- SetStock level), so the SKU's token moves on with it (migration 0004).
CREATE TABLE stock_exclusions (
    sku         TEXT NOT NULL,
    location_id TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    PRIMARY KEY (sku, location_id, group_id)
) WITHOUT ROWID;
