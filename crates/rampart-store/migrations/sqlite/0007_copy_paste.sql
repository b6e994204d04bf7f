-- "Disable copy/paste" for browser sessions (Azure's disableCopyPaste); off by default.
ALTER TABLE bastions ADD COLUMN disable_copy_paste INTEGER NOT NULL DEFAULT 0;
