-- Shareable links (Standard and Premium): the setting, and each link. Only the SHA-256 of a
-- link's token is kept: the link itself is shown once, when it is made.
ALTER TABLE bastions ADD COLUMN enable_shareable_link BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE shareable_links (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    bastion_id TEXT NOT NULL COLLATE NOCASE,
    target_id TEXT NOT NULL COLLATE NOCASE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX shareable_links_bastion ON shareable_links(bastion_id, created_at);
