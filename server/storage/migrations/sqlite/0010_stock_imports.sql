-- Stock imports (BulkService.ImportStock): how far each import has committed, so that a client
-- that lost its connection resumes after the last committed line, from any machine, and an
-- import sent again changes nothing. Each batch updates its import's row in the batch's own
-- transaction.
CREATE TABLE stock_imports (
    import_id    TEXT PRIMARY KEY,
    fingerprint  TEXT   NOT NULL,
    through_line BIGINT NOT NULL,
    applied      BIGINT NOT NULL,
    stale        BIGINT NOT NULL,
    failed       BIGINT NOT NULL,
    create_us    BIGINT NOT NULL,
    update_us    BIGINT NOT NULL
);
