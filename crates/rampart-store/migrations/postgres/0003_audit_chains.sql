-- One audit hash chain per node (chain = the node's name), so nodes never wait on each other
-- to append; records keep a global id (from a sequence, for order) and get a number in their
-- chain. Records from before keep the unnamed chain, numbered by their ids.
ALTER TABLE audit_records ADD COLUMN chain TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_records ADD COLUMN seq BIGINT;
UPDATE audit_records SET seq = id;
ALTER TABLE audit_records ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX audit_records_chain_seq ON audit_records(chain, seq);
CREATE SEQUENCE audit_records_id_seq;
SELECT setval('audit_records_id_seq', COALESCE((SELECT MAX(id) FROM audit_records), 0) + 1, false);
