-- Just-in-time access: an eligible assignment (its rules as JSON) grants nothing until its
-- principal activates it; each activation, its decision and its window.
ALTER TABLE role_assignments ADD COLUMN eligibility TEXT;

CREATE TABLE activations (
    id TEXT PRIMARY KEY,
    assignment_id TEXT NOT NULL REFERENCES role_assignments(id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    justification TEXT,
    duration_secs BIGINT NOT NULL,
    state TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    decided_by TEXT,
    decision_reason TEXT,
    starts_at TEXT,
    ends_at TEXT,
    end_recorded BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX activations_principal ON activations(principal_id);
CREATE INDEX activations_ends ON activations(ends_at);
