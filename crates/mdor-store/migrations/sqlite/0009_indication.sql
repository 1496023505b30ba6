-- A procedure's indication on SQLite: why it was done, as its dataset codes it
-- (`osteoarthritis`, `reconstructive`, `sui`); survivorship's Cox model adjusts for it.
-- Twin of ../postgres/0009_indication.sql: a change to one needs the same change to the other.

-- Null when the dataset does not record one (every procedure stored before this migration).
-- Adding a nullable column without a default rewrites no rows on either engine.
ALTER TABLE procedure ADD COLUMN indication TEXT;
