-- The researchers named on each approved research project (issue 4, parts 1 and 4).
-- Twin of ../postgres/0020_research_member.sql: a change to one needs the same change to the other.
--
-- A researcher's account reads a project's pseudonymised extract over the API only while it
-- is named here: being a researcher is not enough, as an approval names the people who may
-- handle its data. The operator adds and removes members (`mdor research
-- add-member | remove-member`), each change audited; the audit keeps the history.
CREATE TABLE research_project_member (
    project_id INTEGER NOT NULL REFERENCES research_project (id),
    account_id INTEGER NOT NULL REFERENCES account (id),
    added_at TEXT NOT NULL,
    PRIMARY KEY (project_id, account_id)
) WITHOUT ROWID;

-- A researcher's own projects.
CREATE INDEX research_project_member_account ON research_project_member (account_id);
