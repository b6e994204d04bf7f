-- Secrets every gateway node shares (token-signing key, SSH CA): the first stored wins.
CREATE TABLE shared_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Gateway nodes and their heartbeats.
CREATE TABLE nodes (
    name TEXT PRIMARY KEY COLLATE nocase,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    last_heartbeat TIMESTAMPTZ NOT NULL,
    sessions INTEGER NOT NULL DEFAULT 0
);

-- Each node's live sessions as of its last heartbeat (byte counts batched with it).
CREATE TABLE live_sessions (
    id TEXT PRIMARY KEY,
    node TEXT NOT NULL COLLATE nocase,
    "user" TEXT NOT NULL,
    client TEXT NOT NULL,
    bastion_id TEXT NOT NULL COLLATE nocase,
    protocol TEXT NOT NULL,
    target_ip TEXT NOT NULL,
    target_port INTEGER NOT NULL,
    target_resource_id TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    bytes_to_target BIGINT NOT NULL,
    bytes_from_target BIGINT NOT NULL
);
CREATE INDEX live_sessions_node ON live_sessions(node);
CREATE INDEX live_sessions_bastion ON live_sessions(bastion_id);
