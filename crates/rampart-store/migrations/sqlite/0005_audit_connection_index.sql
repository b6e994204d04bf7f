-- Finding connections left open by a crash looks records up by connection ID.
CREATE INDEX audit_records_connection ON audit_records(connection_id);
