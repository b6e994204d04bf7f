-- Session recording (Premium): the setting, and each recording with its integrity.
ALTER TABLE bastions ADD COLUMN session_recording BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE bastions ADD COLUMN allow_unrecorded_tunnels BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE recordings (
    id TEXT PRIMARY KEY,              -- the session's ID
    bastion_id TEXT NOT NULL COLLATE nocase,
    username TEXT NOT NULL,
    target TEXT NOT NULL,
    protocol TEXT NOT NULL,
    format TEXT NOT NULL,             -- asciicast-v2
    location TEXT NOT NULL,           -- where its bytes are (a file under the data directory)
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,                  -- NULL while it runs, or when the gateway died mid-session
    size_bytes BIGINT,
    sha256 TEXT
);
CREATE INDEX recordings_bastion ON recordings(bastion_id, started_at);
