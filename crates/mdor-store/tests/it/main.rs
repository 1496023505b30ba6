//! The store's conformance suite: one integration-test binary that runs every case against
//! `&dyn Store` on in-memory SQLite, on a temporary SQLite file and, when
//! `MDOR_TEST_POSTGRES_URL` is set, on PostgreSQL (see `harness` for how each run is isolated).
//!
//! Each case is written once, in `conformance`, `bulk` or `concurrency`; the `backend_suite!`
//! macro below turns the list of cases into one `#[tokio::test]` per case and backend, so a
//! failure names both (`postgres::recall_pages_…`). The SQLite file's own settings are checked
//! in `sqlite_file`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap in a test is a test failure with a location"
)]

mod access_reviews;
mod accounts;
mod audit_log;
mod bulk;
mod concurrency;
mod conformance;
mod data_quality;
mod fixtures;
mod harness;
mod identifiers_at_rest;
mod oidc;
mod postgres_plans;
mod recall_cases;
mod sessions;
mod sqlite_file;
mod submission_chunks;
mod surveillance;

/// Generates, inside a backend's module, one test per case, named like the case. `fresh`
/// cases get a store whose migrations have not been applied; `migrated` cases get a migrated
/// store as `&dyn Store`; `shared` cases get a migrated `Arc<dyn Store>` for spawned tasks.
macro_rules! backend_suite {
    (
        runner: $runner:path;
        fresh: [$($fresh_module:ident::$fresh:ident),* $(,)?];
        migrated: [$($module:ident::$case:ident),* $(,)?];
        shared: [$($shared_module:ident::$shared:ident),* $(,)?];
    ) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $fresh() {
                $runner(stringify!($fresh), |store| async move {
                    crate::$fresh_module::$fresh(&*store).await;
                })
                .await;
            }
        )*
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $runner(stringify!($case), |store| async move {
                    mdor_store::Store::migrate(&*store).await.unwrap();
                    crate::$module::$case(&*store).await;
                })
                .await;
            }
        )*
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $shared() {
                $runner(stringify!($shared), |store| async move {
                    mdor_store::Store::migrate(&*store).await.unwrap();
                    crate::$shared_module::$shared(store).await;
                })
                .await;
            }
        )*
    };
}

/// Every case, once per backend.
macro_rules! all_cases {
    ($runner:path) => {
        backend_suite! {
            runner: $runner;
            fresh: [
                conformance::check_migrations_reports_pending_until_migrations_are_applied,
            ];
            migrated: [
                conformance::organisation_upsert_keeps_its_id_and_updates_the_name,
                conformance::device_register_upsert_is_read_back_and_only_known_udi_dis_get_ids,
                conformance::submission_round_trips_every_field_and_creates_the_consultant,
                conformance::second_submission_with_the_same_date_of_birth_reuses_the_patient,
                conformance::submission_with_another_date_of_birth_is_a_patient_mismatch_and_writes_nothing,
                conformance::duplicate_local_record_id_is_a_conflict_and_leaves_nothing_behind,
                conformance::submission_for_an_unknown_provider_is_a_conflict_and_leaves_nothing_behind,
                conformance::idempotency_record_is_written_with_the_submission_and_a_reused_key_is_a_conflict,
                conformance::removal_is_recorded_once_and_shown_with_the_revising_provider,
                conformance::removals_are_recorded_all_or_none,
                conformance::timeline_bounds_and_deaths_are_recorded_and_unknown_nhs_numbers_reported,
                conformance::recall_narrows_by_lot_serial_expiry_and_implant_date,
                conformance::recall_pages_by_implant_id_without_gaps_or_duplicates,
                conformance::recall_shows_the_removal_date_of_a_removed_implant,
                conformance::tokens_are_found_by_hash_until_revoked,
                bulk::bulk_load_deduplicates_patients_across_batches_and_reports_duplicates_and_mismatches,
                bulk::bulk_removals_and_deaths_resolve_generated_outcomes_and_report_unknown_ones,
                bulk::bulk_load_of_more_rows_than_one_statement_holds_loads_every_row,
                bulk::an_initial_load_defers_indexes_and_restores_exactly_the_migrated_schema,
                bulk::a_row_breaking_a_deferred_foreign_key_fails_the_load_or_its_restore,
                recall_cases::a_recall_case_finds_listed_and_ranged_lots_and_unrecorded_ones,
                recall_cases::a_recall_case_narrows_by_expiry_window_and_serials,
                recall_cases::recall_work_pages_by_provider_and_refresh_adds_only_late_implants,
                recall_cases::recall_status_changes_only_from_the_expected_status_and_every_access_is_audited,
                recall_cases::multi_patient_reads_name_every_patient_they_returned_in_the_audit,
                surveillance::analysis_extract_joins_each_implant_to_its_procedure_patient_removal_and_death,
                surveillance::a_scoped_extract_is_the_whole_extract_restricted_to_the_scope,
                surveillance::surveillance_runs_keep_each_signals_first_run_and_store_only_raised_alerts,
                data_quality::provider_activity_counts_procedures_submissions_errors_flags_and_expected_activity,
                submission_chunks::chunks_committed_together_keep_each_chunks_records_and_a_correction_among_them,
                submission_chunks::a_group_of_chunks_that_does_not_start_where_the_job_stands_writes_nothing,
                accounts::accounts_are_read_back_by_username_and_a_taken_username_is_a_conflict,
                accounts::patients_have_no_organisation_and_everyone_else_has_one,
                accounts::a_totp_step_is_accepted_once_and_never_an_earlier_one,
                accounts::a_backup_code_is_accepted_once_and_a_rehashed_password_is_kept,
                accounts::login_failures_are_counted_from_a_time_with_their_audit,
                accounts::accounts_unused_since_a_time_are_disabled_and_then_refuse_every_factor,
                accounts::the_registry_organisation_is_the_first_of_kind_registry,
                accounts::a_chosen_password_replaces_the_initial_one_with_its_audit_entry,
                accounts::administrators_create_reenable_and_reset_accounts_each_with_its_audit_entry,
                accounts::an_approver_is_a_designated_data_manager_each_change_audited,
                sessions::a_session_is_found_by_its_secret_hash_used_stepped_up_and_ended_by_its_account,
                sessions::disabling_an_account_or_expiring_it_idle_ends_its_sessions_only,
                access_reviews::a_break_glass_access_raises_one_review_item_decided_once_by_another_person,
                oidc::an_oidc_sign_in_is_taken_once_by_its_state_and_expired_ones_are_purged,
                oidc::a_subject_links_to_one_account_per_issuer_and_a_disabled_account_records_no_sign_in,
            ];
            shared: [
                concurrency::concurrent_submissions_all_succeed_with_distinct_ids,
                concurrency::concurrent_first_submissions_for_one_new_patient_share_that_patient,
                bulk::concurrent_bulk_loads_of_one_batch_load_it_once,
                audit_log::concurrent_audit_entries_are_numbered_without_gaps_and_carry_their_leaf_hash,
                accounts::of_concurrent_sign_ins_with_one_code_exactly_one_succeeds,
                oidc::of_concurrent_callbacks_with_one_state_exactly_one_takes_the_sign_in,
            ];
        }
    };
}

/// Fresh in-memory SQLite per test: the suite every `cargo test` runs.
mod sqlite_memory {
    all_cases!(crate::harness::on_sqlite_memory);
}

/// A fresh SQLite file per test, in WAL mode with a pool of connections.
mod sqlite_file_backend {
    all_cases!(crate::harness::on_sqlite_file);
}

/// A fresh PostgreSQL database per test when `MDOR_TEST_POSTGRES_URL` is set.
mod postgres {
    all_cases!(crate::harness::on_postgres);
}
