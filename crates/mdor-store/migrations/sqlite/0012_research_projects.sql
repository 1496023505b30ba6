-- Approved research projects and their pseudonym keys (issue 4, part 6).
-- Twin of ../postgres/0012_research_projects.sql: a change to one needs the same change to the other.
--
-- A project's extract names each patient by a pseudonym: HMAC-SHA256, under the project's
-- own data key (purpose 'research', wrapped by the key-encryption key like the others), of
-- the patient's blind index. The same patient has the same pseudonym within a project and
-- unlinkable ones across projects.
CREATE TABLE research_project (
    id INTEGER PRIMARY KEY,
    -- The approval's reference, e.g. the research ethics or data access committee's.
    reference TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    -- The organisation the extract is released to.
    organisation_id INTEGER NOT NULL REFERENCES organisation (id),
    -- Only procedures of this registry, when set.
    registry TEXT,
    key_id INTEGER NOT NULL UNIQUE REFERENCES data_key (id),
    approved_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
