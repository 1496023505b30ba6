#!/bin/bash
# Builds a 2M-procedure SQLite registry from a loaded 1M one (docs/benchmarks.md,
# surveillance): every procedure, implant, removal and follow-up flag is copied once, for
# the same patient, under a new local record id ("<id>-2"). The synthetic generator cannot
# write 2M procedures of new patients: the 999 test range of NHS numbers holds about
# 909,000 valid numbers, and test data never leaves it.
# Usage: scripts/bench/double-registry.sh SOURCE.db TARGET.db
set -euo pipefail
src=$1; dst=$2
rm -f "$dst" "$dst-wal" "$dst-shm"
sqlite3 "$src" "VACUUM INTO '$dst'"
sqlite3 "$dst" <<'SQL'
PRAGMA foreign_keys = ON;
PRAGMA journal_mode = WAL;
BEGIN;
CREATE TEMP TABLE offsets AS SELECT
  (SELECT max(id) FROM procedure) AS p, (SELECT max(id) FROM implant) AS i,
  (SELECT max(id) FROM removal) AS r, (SELECT coalesce(max(id), 0) FROM follow_up_flag) AS f;
INSERT INTO procedure (id, patient_id, provider_id, consultant_id, procedure_date, opcs4_code,
    opcs4_version, snomed_ct_id, laterality, registry, local_record_id, created_at, indication)
  SELECT id + (SELECT p FROM offsets), patient_id, provider_id, consultant_id, procedure_date,
    opcs4_code, opcs4_version, snomed_ct_id, laterality, registry, local_record_id || '-2',
    created_at, indication
  FROM procedure ORDER BY id;
INSERT INTO implant (id, procedure_id, position, udi_di, device_model_id, lot, serial, expiry,
    manufactured, raw_scan, entry_type)
  SELECT id + (SELECT i FROM offsets), procedure_id + (SELECT p FROM offsets), position, udi_di,
    device_model_id, lot, CASE WHEN serial IS NULL THEN NULL ELSE serial || 'B' END, expiry,
    manufactured, raw_scan, entry_type
  FROM implant WHERE procedure_id <= (SELECT p FROM offsets) ORDER BY id;
INSERT INTO removal (id, implant_id, kind, removal_date, reason, revising_provider_id, recorded_at)
  SELECT id + (SELECT r FROM offsets), implant_id + (SELECT i FROM offsets), kind, removal_date,
    reason, revising_provider_id, recorded_at
  FROM removal ORDER BY id;
INSERT INTO follow_up_flag (id, implant_id, flag, raised_at, resolved_at)
  SELECT id + (SELECT f FROM offsets), implant_id + (SELECT i FROM offsets), flag, raised_at,
    resolved_at
  FROM follow_up_flag ORDER BY id;
COMMIT;
ANALYZE;
SQL
sqlite3 "$dst" "SELECT 'procedures', count(*) FROM procedure UNION ALL SELECT 'implants', count(*) FROM implant UNION ALL SELECT 'removals', count(*) FROM removal"
