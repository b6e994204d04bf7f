-- Browser sign-in sessions, kept only as SHA-256 hashes of the cookie's secret.
CREATE TABLE portal_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX portal_sessions_user ON portal_sessions(user_id);

-- SSH host keys the gateway pinned on first use, per target (resource ID, or ip:port).
CREATE TABLE pinned_host_keys (
    target TEXT PRIMARY KEY COLLATE NOCASE,
    host_key TEXT NOT NULL,
    pinned_at TEXT NOT NULL
);
