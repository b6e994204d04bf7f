-- Principals are users or service principals (automation's identities; the user name is the
-- service principal's application ID).
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';
