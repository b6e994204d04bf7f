-- One audit hash chain per node on a shared store (chain = the node's name); the one chain of
-- a single node keeps the empty name, and its records keep their ids as their numbers.
ALTER TABLE audit_records ADD COLUMN chain TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_records ADD COLUMN seq INTEGER;
UPDATE audit_records SET seq = id;
CREATE UNIQUE INDEX audit_records_chain_seq ON audit_records(chain, seq);
