-- Rampart's schema on PostgreSQL: the same tables as SQLite's migrations 0001-0007, in
-- PostgreSQL's types. Names are compared without regard to case, as ARM does and as SQLite's
-- COLLATE NOCASE does: a nondeterministic ICU collation.
CREATE COLLATION IF NOT EXISTS nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE nocase,
    display_name TEXT,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Refresh tokens are kept only as SHA-256 hashes; revoking sets revoked_at.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    revoked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);

-- Browser sign-in sessions, kept only as SHA-256 hashes of the cookie's secret.
CREATE TABLE portal_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX portal_sessions_user ON portal_sessions(user_id);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY COLLATE nocase,
    name TEXT NOT NULL UNIQUE COLLATE nocase,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE resource_groups (
    subscription_id TEXT NOT NULL COLLATE nocase REFERENCES subscriptions(id) ON DELETE CASCADE,
    name TEXT NOT NULL COLLATE nocase,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscription_id, name)
);

CREATE TABLE bastions (
    subscription_id TEXT NOT NULL COLLATE nocase,
    resource_group TEXT NOT NULL COLLATE nocase,
    name TEXT NOT NULL COLLATE nocase,
    tier TEXT NOT NULL,
    enable_tunneling BOOLEAN NOT NULL,
    enable_ip_connect BOOLEAN NOT NULL,
    reachable_networks TEXT NOT NULL, -- JSON array of CIDR strings
    idle_timeout_secs BIGINT,
    max_session_secs BIGINT,
    disable_copy_paste BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscription_id, resource_group, name),
    FOREIGN KEY (subscription_id, resource_group) REFERENCES resource_groups(subscription_id, name)
);

-- Network interfaces are resources of their own; a machine names its primary one.
CREATE TABLE network_interfaces (
    subscription_id TEXT NOT NULL COLLATE nocase,
    resource_group TEXT NOT NULL COLLATE nocase,
    name TEXT NOT NULL COLLATE nocase,
    private_ip TEXT NOT NULL,
    attached_to TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscription_id, resource_group, name)
);

-- Virtual machines (scale_set = '') and scale-set instances (scale_set = its name).
CREATE TABLE machines (
    subscription_id TEXT NOT NULL COLLATE nocase,
    resource_group TEXT NOT NULL COLLATE nocase,
    scale_set TEXT NOT NULL DEFAULT '' COLLATE nocase,
    name TEXT NOT NULL COLLATE nocase,
    os_type TEXT NOT NULL,
    nic_name TEXT NOT NULL COLLATE nocase,
    port_ssh INTEGER NOT NULL,
    port_rdp INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscription_id, resource_group, scale_set, name)
);

CREATE TABLE role_definitions (
    name TEXT PRIMARY KEY COLLATE nocase,
    description TEXT NOT NULL,
    actions TEXT NOT NULL,      -- JSON array
    not_actions TEXT NOT NULL,  -- JSON array
    data_actions TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE role_assignments (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL COLLATE nocase,
    scope TEXT NOT NULL COLLATE nocase,
    condition TEXT,             -- JSON {networks, ports}, or NULL
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (principal_id, role, scope)
);
CREATE INDEX role_assignments_principal ON role_assignments(principal_id);

-- SSH host keys the gateway pinned on first use, per target (resource ID, or ip:port).
CREATE TABLE pinned_host_keys (
    target TEXT PRIMARY KEY COLLATE nocase,
    host_key TEXT NOT NULL,
    pinned_at TIMESTAMPTZ NOT NULL
);

-- Append-only and hash-chained: the gateway never updates or deletes a row. Ids are given
-- by the appender (the chain's head + 1) under an advisory lock, so they are the chain's order.
CREATE TABLE audit_records (
    id BIGINT PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL,
    event TEXT NOT NULL,
    "user" TEXT COLLATE nocase,
    client_address TEXT,
    bastion_id TEXT,
    target_ip TEXT,
    target_port INTEGER,
    tunnel_id TEXT,
    connection_id TEXT,
    result TEXT NOT NULL,
    reason_code TEXT,
    reason TEXT,
    bytes_to_target BIGINT,
    bytes_from_target BIGINT,
    duration_ms BIGINT,
    user_agent TEXT,
    protocol TEXT,
    target_resource_id TEXT COLLATE nocase,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_records_time ON audit_records(time);
CREATE INDEX audit_records_user ON audit_records("user");
CREATE INDEX audit_records_connection ON audit_records(connection_id);
