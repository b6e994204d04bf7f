-- Where a bastion's recordings go (an Azure Blob container's SAS URL; NULL: the data
-- directory), and how long they are kept (NULL: for ever).
ALTER TABLE bastions ADD COLUMN recording_storage_url TEXT;
ALTER TABLE bastions ADD COLUMN recording_retention_days INTEGER;
