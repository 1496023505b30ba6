//! Research projects and their pseudonymised extracts (issue 4, part 6), written once for both
//! engines like `recall_cases.rs`: `research_queries!` expands the queries per connection type
//! and `research_store_methods!` the store methods that hold the transaction.
//!
//! Each project has its own data key (purpose `research`), wrapped by the key-encryption key
//! like the identifier keys and re-wrapped with them by `mdor keys rotate`. An extract names a
//! patient by `field_crypto::research_pseudonym` of the blind index, so it is computed without
//! opening any identifier, and reads no identifier column at all.

use chrono::{Datelike, NaiveDate};

use crate::types::ResearchRow;

/// One implant as the extract query reads it.
#[derive(sqlx::FromRow)]
pub(crate) struct ResearchDbRow {
    pub implant_id: i64,
    pub nhs_number_index: String,
    pub sex: String,
    pub birth_month_mid: NaiveDate,
    pub date_of_death: Option<NaiveDate>,
    pub procedure_date: NaiveDate,
    pub provider_ods: String,
    pub registry: String,
    pub laterality: String,
    pub udi_di: String,
    pub removal_kind: Option<String>,
    pub removal_date: Option<NaiveDate>,
}

pub(crate) const EXTRACT_PAGE: &str = "SELECT i.id AS implant_id, pt.nhs_number_index, pt.sex, \
       pt.birth_month_mid, pt.date_of_death, p.procedure_date, o.ods_code AS provider_ods, \
       p.registry, p.laterality, i.udi_di, r.kind AS removal_kind, r.removal_date \
     FROM implant i \
     JOIN procedure p ON p.id = i.procedure_id \
     JOIN patient pt ON pt.id = p.patient_id \
     JOIN organisation o ON o.id = p.provider_id \
     LEFT JOIN removal r ON r.implant_id = i.id \
     WHERE i.id > $1 AND ($2 IS NULL OR p.registry = $2) \
       AND ($4 IS NULL OR p.procedure_date >= $4) AND ($5 IS NULL OR p.procedure_date <= $5) \
       AND ($6 IS NULL OR i.udi_di IN (SELECT udi_di FROM device_model WHERE device_type = $6)) \
     ORDER BY i.id LIMIT $3";

pub(crate) const PROJECT_SELECT: &str = "SELECT rp.id, rp.reference, rp.title, \
       rp.organisation_id, o.ods_code AS organisation_ods, rp.registry, rp.approved_by, \
       rp.created_at, rp.expires_on, rp.key_id, k.kek_id, k.wrapped \
     FROM research_project rp \
     JOIN organisation o ON o.id = rp.organisation_id \
     JOIN data_key k ON k.id = rp.key_id";

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectDbRow {
    pub id: i64,
    pub reference: String,
    pub title: String,
    pub organisation_id: i64,
    pub organisation_ods: String,
    pub registry: Option<String>,
    pub approved_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub expires_on: Option<NaiveDate>,
    pub key_id: i64,
    pub kek_id: String,
    pub wrapped: String,
}

impl ProjectDbRow {
    pub fn project(&self) -> crate::types::ResearchProject {
        crate::types::ResearchProject {
            id: crate::types::ResearchProjectId(self.id),
            reference: self.reference.clone(),
            title: self.title.clone(),
            organisation: crate::types::OrganisationId(self.organisation_id),
            organisation_ods: self.organisation_ods.clone(),
            registry: self.registry.clone(),
            approved_by: self.approved_by.clone(),
            created_at: self.created_at,
            expires_on: self.expires_on,
        }
    }
}

/// Whole years from `from` to `to`.
fn whole_years(from: NaiveDate, to: NaiveDate) -> i64 {
    let mut years = i64::from(to.year() - from.year());
    if (to.month(), to.day()) < (from.month(), from.day()) {
        years -= 1;
    }
    years
}

impl ResearchDbRow {
    pub fn into_row(self, project_key: &[u8; 32]) -> ResearchRow {
        let days = |date: Option<NaiveDate>| date.map(|d| (d - self.procedure_date).num_days());
        ResearchRow {
            cursor: self.implant_id,
            pseudonym: crate::field_crypto::research_pseudonym(project_key, &self.nhs_number_index),
            sex: self.sex.clone(),
            age_at_procedure: whole_years(self.birth_month_mid, self.procedure_date),
            procedure_month: self.procedure_date.format("%Y-%m").to_string(),
            provider_ods: self.provider_ods.clone(),
            registry: self.registry.clone(),
            laterality: self.laterality.clone(),
            udi_di: self.udi_di.clone(),
            removal_kind: self.removal_kind.clone(),
            days_to_removal: days(self.removal_date),
            days_to_death: days(self.date_of_death),
        }
    }
}

/// Expands, inside a backend module, the research queries for `$conn`.
macro_rules! research_queries {
    ($conn:ty) => {
        use $crate::backend::research::{EXTRACT_PAGE, PROJECT_SELECT, ProjectDbRow, ResearchDbRow};
        use $crate::field_crypto::KeyEncryptionKey;
        use $crate::types::{NewResearchProject, ResearchProject, ResearchProjectId, ResearchRow};

        /// Creates the project and its pseudonym key, in the caller's transaction.
        pub(super) async fn create_project(
            conn: &mut $conn,
            kek: &KeyEncryptionKey,
            project: &NewResearchProject,
        ) -> StoreResult<ResearchProjectId> {
            let key_id =
                super::key_sql::insert_key(&mut *conn, kek, "research", project.created_at)
                    .await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO research_project \
                   (reference, title, organisation_id, registry, key_id, approved_by, created_at, \
                    expires_on) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(&project.reference)
            .bind(&project.title)
            .bind(project.organisation.0)
            .bind(project.registry.as_deref())
            .bind(key_id)
            .bind(&project.approved_by)
            .bind(project.created_at)
            .bind(project.expires_on)
            .fetch_one(&mut *conn)
            .await?;
            Ok(ResearchProjectId(id))
        }

        pub(super) async fn project_row(
            conn: &mut $conn,
            condition: &str,
            value: String,
        ) -> StoreResult<Option<ProjectDbRow>> {
            Ok(sqlx::query_as(&format!("{PROJECT_SELECT} WHERE {condition}"))
                .bind(value)
                .fetch_optional(&mut *conn)
                .await?)
        }

        pub(super) async fn project(
            conn: &mut $conn,
            reference: &str,
        ) -> StoreResult<Option<ResearchProject>> {
            Ok(project_row(conn, "rp.reference = $1", reference.to_string())
                .await?
                .map(|row| row.project()))
        }

        /// Names `account` on the project; `Conflict` if it already is.
        pub(super) async fn add_member(
            conn: &mut $conn,
            project: ResearchProjectId,
            account: $crate::accounts::AccountId,
            at: chrono::DateTime<chrono::Utc>,
        ) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO research_project_member (project_id, account_id, added_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(project.0)
            .bind(account.0)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Removes `account` from the project; false if it was not named on it.
        pub(super) async fn remove_member(
            conn: &mut $conn,
            project: ResearchProjectId,
            account: $crate::accounts::AccountId,
        ) -> StoreResult<bool> {
            let removed = sqlx::query(
                "DELETE FROM research_project_member WHERE project_id = $1 AND account_id = $2",
            )
            .bind(project.0)
            .bind(account.0)
            .execute(&mut *conn)
            .await?;
            Ok(removed.rows_affected() > 0)
        }

        /// The projects naming `account`, by reference.
        pub(super) async fn projects_of(
            conn: &mut $conn,
            account: $crate::accounts::AccountId,
        ) -> StoreResult<Vec<ResearchProject>> {
            let rows: Vec<ProjectDbRow> = sqlx::query_as(&format!(
                "{PROJECT_SELECT} JOIN research_project_member m ON m.project_id = rp.id \
                 WHERE m.account_id = $1 ORDER BY rp.reference"
            ))
            .bind(account.0)
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows.iter().map(ProjectDbRow::project).collect())
        }

        /// A page of the project's extract after implant `after`.
        pub(super) async fn extract_page(
            conn: &mut $conn,
            kek: &KeyEncryptionKey,
            project: ResearchProjectId,
            filter: &$crate::types::ResearchFilter,
            after: i64,
            limit: u32,
        ) -> StoreResult<Vec<ResearchRow>> {
            let Some(row) =
                project_row(&mut *conn, "CAST(rp.id AS TEXT) = $1", project.0.to_string()).await?
            else {
                return Err(StoreError::NotFound {
                    what: "research project",
                });
            };
            if row.kek_id != kek.id() {
                return Err(StoreError::Keys(format!(
                    "research key {} is wrapped by key-encryption key {}, but the configured one is {}",
                    row.key_id,
                    row.kek_id,
                    kek.id()
                )));
            }
            let key = kek.unwrap(row.key_id, "research", &row.wrapped)?;
            let rows: Vec<ResearchDbRow> = sqlx::query_as(EXTRACT_PAGE)
                .bind(after)
                .bind(row.registry.as_deref())
                .bind(i64::from(limit))
                .bind(filter.implanted_from)
                .bind(filter.implanted_to)
                .bind(filter.device_type.as_deref())
                .fetch_all(&mut *conn)
                .await?;
            Ok(rows.into_iter().map(|r| r.into_row(&key)).collect())
        }
    };
}

pub(crate) use research_queries;

/// Expands, inside a backend's inherent `impl`, the research store methods (called by one-line
/// `Store` methods, as `async_trait` cannot see into a macro).
macro_rules! research_store_methods {
    () => {
        async fn create_research_project_now(
            &self,
            project: &$crate::types::NewResearchProject,
        ) -> StoreResult<$crate::types::ResearchProjectId> {
            // Opening the identifier keys first refuses a wrong key-encryption key by name.
            self.cipher().await?;
            let kek = self.keys.kek()?;
            let mut tx = self.begin_write().await?;
            self.lock_keys(&mut tx).await?;
            let id = research_sql::create_project(&mut tx, &kek, project).await?;
            tx.commit().await?;
            Ok(id)
        }

        async fn research_project_now(
            &self,
            reference: &str,
        ) -> StoreResult<Option<$crate::types::ResearchProject>> {
            let mut conn = self.pool.acquire().await?;
            research_sql::project(&mut conn, reference).await
        }

        async fn add_research_member_now(
            &self,
            project: $crate::types::ResearchProjectId,
            account: $crate::accounts::AccountId,
            audit: &NewAuditEvent,
        ) -> StoreResult<()> {
            let mut tx = self.begin_write().await?;
            research_sql::add_member(&mut tx, project, account, audit.at).await?;
            recall::insert_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn remove_research_member_now(
            &self,
            project: $crate::types::ResearchProjectId,
            account: $crate::accounts::AccountId,
            audit: &NewAuditEvent,
        ) -> StoreResult<bool> {
            let mut tx = self.begin_write().await?;
            if !research_sql::remove_member(&mut tx, project, account).await? {
                tx.rollback().await?;
                return Ok(false);
            }
            recall::insert_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn research_projects_of_now(
            &self,
            account: $crate::accounts::AccountId,
        ) -> StoreResult<Vec<$crate::types::ResearchProject>> {
            let mut conn = self.pool.acquire().await?;
            research_sql::projects_of(&mut conn, account).await
        }

        async fn research_extract_page_now(
            &self,
            project: $crate::types::ResearchProjectId,
            filter: &$crate::types::ResearchFilter,
            after: i64,
            limit: u32,
            audit: &NewAuditEvent,
        ) -> StoreResult<Vec<$crate::types::ResearchRow>> {
            let kek = self.keys.kek()?;
            let mut tx = self.begin_write().await?;
            let rows =
                research_sql::extract_page(&mut tx, &kek, project, filter, after, limit).await?;
            let mut audit = audit.clone();
            audit.record_count = rows.len() as u64;
            recall::insert_audit(&mut tx, &audit).await?;
            tx.commit().await?;
            Ok(rows)
        }
    };
}

pub(crate) use research_store_methods;
