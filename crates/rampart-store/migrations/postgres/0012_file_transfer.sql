-- File transfer in browser terminals (Azure's file copy): the directions a bastion allows
-- ('upload,download', 'upload', 'download' or 'none') and the largest file (NULL: no limit).
ALTER TABLE bastions ADD COLUMN file_transfer TEXT NOT NULL DEFAULT 'none';
ALTER TABLE bastions ADD COLUMN file_transfer_max_bytes BIGINT;
