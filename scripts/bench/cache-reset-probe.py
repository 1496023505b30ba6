#!/usr/bin/env python3
# Does a commit by another connection make a WAL reader discard its page cache? Reads the
# recall join for one large lot, with and without a one-row commit (same file / another file)
# between reads.
import sqlite3, time, statistics, os
import sys
db = sys.argv[1]  # a loaded database the probe may add a table to (and drops it again)
r = sqlite3.connect(db); r.execute('PRAGMA cache_size=-65536')
w = sqlite3.connect(db); w.execute('PRAGMA journal_mode=WAL'); w.execute('PRAGMA synchronous=FULL')
w.execute('CREATE TABLE IF NOT EXISTS bench_note (id INTEGER PRIMARY KEY, t TEXT)'); w.commit()
if os.path.exists('side.db'): os.unlink('side.db')
s = sqlite3.connect('side.db'); s.execute('PRAGMA journal_mode=WAL'); s.execute('PRAGMA synchronous=FULL')
s.execute('CREATE TABLE bench_note (id INTEGER PRIMARY KEY, t TEXT)'); s.commit()
udi, lot, n = r.execute('select udi_di, lot, count(*) n from implant where lot is not null group by 1,2 having n>=240 limit 1').fetchone()
q = ('select i.id, p.procedure_date, pt.nhs_number, pt.family_name, pt.given_name, pt.date_of_birth, pt.postcode, o.ods_code '
     'from implant i join procedure p on p.id=i.procedure_id join patient pt on pt.id=p.patient_id join organisation o on o.id=p.provider_id where i.udi_di=? and i.lot=?')
def run(writer):
    ts = []
    for k in range(200):
        if writer is not None:
            writer.execute('insert into bench_note (t) values (?)', ('x',)); writer.commit()
        t = time.perf_counter(); rows = r.execute(q, (udi, lot)).fetchall(); ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), len(rows)
try:
    r.execute(q, (udi, lot)).fetchall()
except sqlite3.OperationalError as e:
    cols = [c[1] for c in r.execute('pragma table_info(patient)')]; print(cols); raise
print('rows', n)
for name, writer in [('no writes', None), ('commit to the same file', w), ('commit to another file', s), ('no writes again', None)]:
    med, k = run(writer)
    print(f'{name}: median read {med:.2f} ms ({k} rows)')
w.execute('DROP TABLE bench_note'); w.commit()
