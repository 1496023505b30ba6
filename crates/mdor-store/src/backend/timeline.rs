//! One patient's timeline across every registry, written once for both engines (see
//! `recall_cases` for why a macro expands the same bodies per connection type).

pub(crate) const PATIENT: &str = "SELECT id, nhs_number_index, nhs_number, family_name, given_name, date_of_birth, \
       sex, postcode, date_of_death FROM patient WHERE id = $1";

/// Every implant of patient `$1` with its procedure, register entry and removal, oldest first.
pub(crate) const IMPLANTS: &str = "SELECT p.id AS procedure_id, p.procedure_date, p.registry, \
       o.ods_code AS provider_ods, o.name AS provider_name, c.gmc_number AS consultant_gmc, \
       p.opcs4_code, p.snomed_ct_id, p.laterality, p.local_record_id, \
       i.id AS implant_id, CAST(i.position AS BIGINT) AS position, i.udi_di, dm.manufacturer, dm.brand, dm.model, \
       dm.device_type, i.lot, i.serial, i.expiry, i.manufactured, i.entry_type, \
       r.kind AS removal_kind, r.removal_date, r.reason AS removal_reason, \
       ro.ods_code AS revising_provider \
     FROM procedure p \
     JOIN organisation o ON o.id = p.provider_id \
     JOIN consultant c ON c.id = p.consultant_id \
     JOIN implant i ON i.procedure_id = p.id \
     LEFT JOIN device_model dm ON dm.id = i.device_model_id \
     LEFT JOIN removal r ON r.implant_id = i.id \
     LEFT JOIN organisation ro ON ro.id = r.revising_provider_id \
     WHERE p.patient_id = $1 \
     ORDER BY p.procedure_date, p.id, i.position";

pub(crate) const RECALLS: &str = "SELECT ci.implant_id, c.id AS case_id, c.reference, c.title, \
       e.status \
     FROM recall_case_implant ci \
     JOIN recall_case c ON c.id = ci.case_id \
     JOIN recall_case_patient e ON e.case_id = ci.case_id AND e.patient_id = ci.patient_id \
          AND e.provider_id = ci.provider_id \
     WHERE ci.patient_id = $1 ORDER BY c.id";

/// Expands, inside a backend module, `patient_timeline` for `$conn`.
macro_rules! timeline_queries {
    ($conn:ty) => {
        use $crate::backend::timeline as tl;
        use $crate::rows::{TimelineImplantRow, TimelinePatientRow};

        pub(super) async fn patient_timeline(
            conn: &mut $conn,
            cipher: &$crate::field_crypto::FieldCipher,
            patient: PatientId,
        ) -> StoreResult<Option<PatientTimeline>> {
            let row: Option<TimelinePatientRow> = sqlx::query_as(tl::PATIENT)
                .bind(patient.0)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let implants: Vec<TimelineImplantRow> = sqlx::query_as(tl::IMPLANTS)
                .bind(patient.0)
                .fetch_all(&mut *conn)
                .await?;
            let recalls: Vec<(i64, i64, String, String, String)> = sqlx::query_as(tl::RECALLS)
                .bind(patient.0)
                .fetch_all(&mut *conn)
                .await?;
            let mut timeline = row.into_timeline(cipher)?;
            for implant in implants {
                implant.push_into(&mut timeline);
            }
            for (implant_id, case_id, reference, title, status) in recalls {
                let status = crate::rows::recall_status(&status)?;
                for procedure in &mut timeline.procedures {
                    for implant in &mut procedure.implants {
                        if implant.implant_id.0 == implant_id {
                            implant.recalls.push(TimelineRecall {
                                case_id: RecallCaseId(case_id),
                                reference: reference.clone(),
                                title: title.clone(),
                                status,
                            });
                        }
                    }
                }
            }
            Ok(Some(timeline))
        }
    };
}

pub(crate) use timeline_queries;
