-- A location group can be disabled (OCI's IsEnabled): it reports no availability and takes no
-- new reservations or routes; what it already holds stays covered until released.
ALTER TABLE location_groups ADD COLUMN enabled SMALLINT NOT NULL DEFAULT 1;
