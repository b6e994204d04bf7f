-- Multi-factor authentication of local accounts: a TOTP secret (RFC 6238), pending until a
-- first code verifies it; the last time step accepted (a code is accepted once, on any node);
-- recovery codes, kept only as hashes and used once.
CREATE TABLE mfa_totp (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT FALSE,
    last_step BIGINT,
    created_at TEXT NOT NULL
);

CREATE TABLE mfa_recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (user_id, code_hash)
);

-- Passkeys (WebAuthn) for the portal: the credential as webauthn-rs keeps it (public key,
-- counter), by its ID.
CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX passkeys_user ON passkeys(user_id);
