-- Which process holds a node's name (random per start): a second process given a running
-- node's name is refused instead of overwriting its reports.
ALTER TABLE nodes ADD COLUMN instance TEXT NOT NULL DEFAULT '';
