-- Per-bastion session limits (seconds; NULL = none).
ALTER TABLE bastions ADD COLUMN idle_timeout_secs INTEGER;
ALTER TABLE bastions ADD COLUMN max_session_secs INTEGER;
