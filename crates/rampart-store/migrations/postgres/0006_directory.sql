-- Single sign-on: OpenID Connect identity providers, the users and groups they bring, and the
-- provider's refresh token behind each Rampart refresh token of a federated sign-in.
CREATE TABLE identity_providers (
    name TEXT PRIMARY KEY COLLATE nocase,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    username_claim TEXT NOT NULL,
    groups_claim TEXT NOT NULL,
    allowed_domains TEXT NOT NULL DEFAULT '[]',
    ca_pem TEXT,
    created_at TIMESTAMPTZ NOT NULL
);

-- A federated user or group: its provider and the provider's ID of it (`sub`, a group claim).
ALTER TABLE users ADD COLUMN identity_provider TEXT REFERENCES identity_providers(name) ON DELETE CASCADE;
ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX users_external ON users(identity_provider, kind, external_id)
    WHERE identity_provider IS NOT NULL;

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members(member_id);

CREATE TABLE upstream_tokens (
    token_hash TEXT PRIMARY KEY REFERENCES refresh_tokens(token_hash) ON DELETE CASCADE,
    identity_provider TEXT NOT NULL REFERENCES identity_providers(name) ON DELETE CASCADE,
    refresh_token TEXT NOT NULL
);
