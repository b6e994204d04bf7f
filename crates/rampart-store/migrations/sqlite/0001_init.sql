-- Users signed in with a password (argon2id PHC string).
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Refresh tokens are kept only as SHA-256 hashes; revoking sets revoked_at.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at TEXT NOT NULL
);

CREATE TABLE resource_groups (
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    name TEXT NOT NULL COLLATE NOCASE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (subscription_id, name)
);

CREATE TABLE bastions (
    subscription_id TEXT NOT NULL,
    resource_group TEXT NOT NULL COLLATE NOCASE,
    name TEXT NOT NULL COLLATE NOCASE,
    tier TEXT NOT NULL,
    enable_tunneling INTEGER NOT NULL,
    enable_ip_connect INTEGER NOT NULL,
    reachable_networks TEXT NOT NULL, -- JSON array of CIDR strings
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (subscription_id, resource_group, name),
    FOREIGN KEY (subscription_id, resource_group) REFERENCES resource_groups(subscription_id, name)
);

-- Append-only: the gateway never updates or deletes a row.
CREATE TABLE audit_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    event TEXT NOT NULL,
    user TEXT,
    client_address TEXT,
    bastion_id TEXT,
    target_ip TEXT,
    target_port INTEGER,
    tunnel_id TEXT,
    connection_id TEXT,
    result TEXT NOT NULL,
    reason_code TEXT,
    reason TEXT,
    bytes_to_target INTEGER,
    bytes_from_target INTEGER,
    duration_ms INTEGER
);
CREATE INDEX audit_records_time ON audit_records(time);
