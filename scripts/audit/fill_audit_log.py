#!/usr/bin/env python3
"""Appends N synthetic audit entries to a migrated mdor SQLite database, for the audit
verification benchmark (docs/benchmarks.md).

It computes each entry's position and leaf hash itself, from the canonical encodings
documented in docs/security.md (odd positions version 1, as an API token's entry outside a
request; even positions version 3, as an entry written for an HTTP request), so
`mdor audit verify` over its output is also an independent check of those encodings: a
difference shows up as leaf mismatches.

Usage: fill_audit_log.py DB_FILE N
"""

import datetime
import hashlib
import sqlite3
import struct
import sys
import uuid

TAG = "mdor-audit-entry-v1"
TAG_V3 = "mdor-audit-entry-v3"
ABSENT = struct.pack(">I", 0xFFFFFFFF)


def field(value):
    if value is None:
        return ABSENT
    data = str(value).encode()
    return struct.pack(">I", len(data)) + data


def leaf_hash(seq, at, organisation, role, token, action, resource, patient, count, purpose, outcome,
              account=None, request_id=None):
    if request_id is not None:
        # Version 3: the account always written (absent or not) after the token, the request
        # id last.
        values = (TAG_V3, seq, at, organisation, role, token, account, action, resource, patient, count,
                  purpose, outcome, request_id)
    else:
        assert account is None, "version 2 is not written by this script"
        values = (TAG, seq, at, organisation, role, token, action, resource, patient, count, purpose, outcome)
    encoded = b"".join(field(v) for v in values)
    return hashlib.sha256(b"\x00" + encoded).digest()


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO organisation (ods_code, name, kind) VALUES ('AUDITB', 'Audit bench', 'regulator') "
        "ON CONFLICT (ods_code) DO NOTHING"
    )
    organisation = db.execute("SELECT id FROM organisation WHERE ods_code = 'AUDITB'").fetchone()[0]
    last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_event").fetchone()[0]
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    rows = []
    for i in range(1, n + 1):
        seq = last + i
        when = start + datetime.timedelta(microseconds=1_000_003 * i)
        at_text = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        # sqlx stores DateTime<Utc> as RFC 3339 text with an offset.
        stored_at = when.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
        patient = None
        resource = f"recall?udi_di=05012345678900&lot=L{i % 997}&limit=100"
        request_id = str(uuid.UUID(int=seq, version=4)) if seq % 2 == 0 else None
        values = (seq, at_text, organisation, "regulator", None, "recall.query", resource, patient, i % 50, "recall", "ok")
        rows.append(
            (stored_at, organisation, "regulator", None, "recall.query", resource, patient, i % 50, "recall", "ok",
             seq, leaf_hash(*values, request_id=request_id), request_id)
        )
        if len(rows) == 50_000 or i == n:
            db.executemany(
                "INSERT INTO audit_event (at, organisation_id, role, token_id, action, resource, patient_id, "
                "record_count, purpose, outcome, seq, leaf_hash, request_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            rows.clear()
    db.commit()
    print(f"appended {n} audit entries after position {last}")


if __name__ == "__main__":
    main()
