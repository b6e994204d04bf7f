ALTER TABLE users ADD COLUMN display_name TEXT;

-- Network interfaces are resources of their own; a machine names its primary one.
CREATE TABLE network_interfaces (
    subscription_id TEXT NOT NULL,
    resource_group TEXT NOT NULL COLLATE NOCASE,
    name TEXT NOT NULL COLLATE NOCASE,
    private_ip TEXT NOT NULL,
    attached_to TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (subscription_id, resource_group, name)
);

-- Virtual machines (scale_set = '') and scale-set instances (scale_set = its name).
CREATE TABLE machines (
    subscription_id TEXT NOT NULL,
    resource_group TEXT NOT NULL COLLATE NOCASE,
    scale_set TEXT NOT NULL DEFAULT '' COLLATE NOCASE,
    name TEXT NOT NULL COLLATE NOCASE,
    os_type TEXT NOT NULL,
    nic_name TEXT NOT NULL COLLATE NOCASE,
    port_ssh INTEGER NOT NULL,
    port_rdp INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (subscription_id, resource_group, scale_set, name)
);

CREATE TABLE role_definitions (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    description TEXT NOT NULL,
    actions TEXT NOT NULL,      -- JSON array
    not_actions TEXT NOT NULL,  -- JSON array
    created_at TEXT NOT NULL
);

CREATE TABLE role_assignments (
    id TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL COLLATE NOCASE,
    scope TEXT NOT NULL COLLATE NOCASE,
    condition TEXT,             -- JSON {networks, ports}, or NULL
    created_at TEXT NOT NULL,
    UNIQUE (principal_id, role, scope)
);
CREATE INDEX role_assignments_principal ON role_assignments(principal_id);

-- Audit records become a hash chain (records written before this migration are sealed
-- into the chain when the store opens).
ALTER TABLE audit_records ADD COLUMN user_agent TEXT;
ALTER TABLE audit_records ADD COLUMN protocol TEXT;
ALTER TABLE audit_records ADD COLUMN target_resource_id TEXT;
ALTER TABLE audit_records ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_records ADD COLUMN hash TEXT;
CREATE INDEX audit_records_user ON audit_records(user);
