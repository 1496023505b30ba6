//! Secondary indexes and foreign keys that an initial load into an empty database builds once,
//! at the end, instead of maintaining them row by row; and their repair after an interrupted
//! load.
//!
//! Why: on a national load (a million procedures, 2.7 million implants) the two recall
//! indexes on `implant` cost SQLite about a third of its time in random B-tree inserts, and
//! PostgreSQL's per-row foreign-key triggers cost about 30 µs an implant. Building an index
//! from sorted data, or validating a foreign key with one join, is several times cheaper.
//! This is what `pg_restore` does: data first, then indexes and constraints.
//!
//! Safety: only unique-free secondary indexes and foreign keys are deferred; primary keys and
//! the unique constraints that make loads idempotent (NHS number; provider and local record
//! id; procedure and device position) are never dropped. Restoring validates every foreign
//! key against the loaded rows, so a violation fails the load loudly rather than being kept.
//! The statements here must be exactly the migrations'; a conformance test compares the
//! schema after a defer and restore with the freshly migrated one.

/// A secondary index that the migrations create and an initial load may defer.
pub(crate) struct DeferrableIndex {
    pub name: &'static str,
    /// The `CREATE INDEX` statement, as in the migrations (valid on both engines).
    pub create: &'static str,
}

/// Indexes deferred on both engines. `procedure_patient` is here because returning
/// patients make its inserts random, and `procedure_provider_date` (data quality's counts by
/// procedure date) because dates arrive in no order; the rest serve recall by UDI-DI with lot
/// or serial.
pub(crate) const INDEXES: &[DeferrableIndex] = &[
    DeferrableIndex {
        name: "implant_udi_lot",
        create: "CREATE INDEX implant_udi_lot ON implant (udi_di, lot)",
    },
    DeferrableIndex {
        name: "implant_udi_serial",
        create: "CREATE INDEX implant_udi_serial ON implant (udi_di, serial)",
    },
    DeferrableIndex {
        name: "procedure_patient",
        create: "CREATE INDEX procedure_patient ON procedure (patient_id)",
    },
    DeferrableIndex {
        name: "procedure_provider_date",
        create: "CREATE INDEX procedure_provider_date ON procedure (provider_id, procedure_date)",
    },
];

/// A foreign key deferred on PostgreSQL, where each one is a trigger fired per inserted row.
/// SQLite cannot drop a constraint without rebuilding its table, and its checks are cheap
/// primary-key probes, so it keeps them.
pub(crate) struct DeferrableForeignKey {
    pub table: &'static str,
    /// PostgreSQL's default name for the migration's unnamed constraint.
    pub name: &'static str,
    pub definition: &'static str,
}

pub(crate) const FOREIGN_KEYS: &[DeferrableForeignKey] = &[
    DeferrableForeignKey {
        table: "procedure",
        name: "procedure_patient_id_fkey",
        definition: "FOREIGN KEY (patient_id) REFERENCES patient (id)",
    },
    DeferrableForeignKey {
        table: "procedure",
        name: "procedure_provider_id_fkey",
        definition: "FOREIGN KEY (provider_id) REFERENCES organisation (id)",
    },
    DeferrableForeignKey {
        table: "procedure",
        name: "procedure_consultant_id_fkey",
        definition: "FOREIGN KEY (consultant_id) REFERENCES consultant (id)",
    },
    DeferrableForeignKey {
        table: "implant",
        name: "implant_procedure_id_fkey",
        definition: "FOREIGN KEY (procedure_id) REFERENCES procedure (id)",
    },
    DeferrableForeignKey {
        table: "implant",
        name: "implant_device_model_id_fkey",
        definition: "FOREIGN KEY (device_model_id) REFERENCES device_model (id)",
    },
    DeferrableForeignKey {
        table: "follow_up_flag",
        name: "follow_up_flag_implant_id_fkey",
        definition: "FOREIGN KEY (implant_id) REFERENCES implant (id)",
    },
];
