-- The last day of a research project's approval (issue 4 §4): after it, the project's extract
-- is closed to everyone, its researchers and the operator alike, as the approval has ended.
-- Twin of ../sqlite/0022_research_expiry.sql: a change to one needs the same change to the other.
--
-- NULL for a project approved without an end date (and for every project created before).
ALTER TABLE research_project ADD COLUMN expires_on DATE;
