-- Data actions (signing in to a VM) are kept apart from management actions.
ALTER TABLE role_definitions ADD COLUMN data_actions TEXT NOT NULL DEFAULT '[]';
