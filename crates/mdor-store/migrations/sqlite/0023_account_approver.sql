-- An organisation's approver (issue 4 §1): the provider data managers an administrator has
-- designated to create and administer their own organisation's staff accounts. Being a data
-- manager is no longer enough, so that an organisation has as many people issuing
-- credentials as it chose, not every data manager it has.
-- Twin of ../postgres/0023_account_approver.sql: a change to one needs the same change to the other.
--
-- Every existing account starts as no approver: an administrator designates them afresh.
ALTER TABLE account ADD COLUMN approver INTEGER NOT NULL DEFAULT 0
    CHECK (approver IN (0, 1) AND (approver = 0 OR role = 'provider_data_manager'));
