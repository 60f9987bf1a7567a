-- Only reservations that can expire belong in the sweeper's index: reservations without a TTL
-- (most of them) no longer write an index page at every commit.
DROP INDEX reservations_due;

CREATE INDEX reservations_due ON reservations (expire_us) WHERE state = 1 AND expire_us IS NOT NULL;
