-- Whether shoppers can collect orders at a location (FindNearbyAvailability). Opt-in: existing
-- locations are not pickup locations until UpsertLocations says so.
ALTER TABLE locations ADD COLUMN pickup_enabled SMALLINT NOT NULL DEFAULT 0;
