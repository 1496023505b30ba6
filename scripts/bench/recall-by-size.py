#!/usr/bin/env python3
# Sequential recalls over one keep-alive connection: latency per target with its row count,
# to see whether the tail is the large lots (deterministic) or spikes (noise).
import http.client, time, json, statistics, sys
import os
tok = os.environ['MDOR_TOKEN']
targets = [l.split() for l in open(os.environ.get('MDOR_RECALL_TARGETS', 'recall-targets.txt'))]
c = http.client.HTTPConnection('127.0.0.1', 8089)
res = []
for rnd in range(3):
    for udi, lot in targets:
        t = time.perf_counter()
        c.request('GET', f'/api/v1/recall?udi_di={udi}&lot={lot}&limit=1000', headers={'Authorization': 'Bearer ' + tok, 'Access-Purpose': 'recall'})
        r = c.getresponse(); body = r.read()
        dt = (time.perf_counter() - t) * 1000
        n = body.count(b'"implant_id"') or body.count(b'"nhs_number"')
        res.append((dt, n, len(body), rnd, udi, lot))
lat = sorted(x[0] for x in res)
q = lambda p: lat[int(p * len(lat)) - 1]
print('n=%d p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f' % (len(lat), q(.5), q(.9), q(.99), q(.999)))
slow = sorted(res, reverse=True)[: len(res) // 100]
print('slowest 1%%: median rows %d, median bytes %d' % (statistics.median(x[1] for x in slow), statistics.median(x[2] for x in slow)))
print('all: median rows %d, median bytes %d' % (statistics.median(x[1] for x in res), statistics.median(x[2] for x in res)))
# Is the slowness per target repeatable across rounds?
by = {}
for dt, n, b, rnd, u, l in res: by.setdefault((u, l), []).append(dt)
slow_keys = {(x[4], x[5]) for x in slow}
rep = [sorted(by[k]) for k in slow_keys]
print('slow targets: %d; of them slow (>p99) in >=2 rounds: %d' % (len(slow_keys), sum(1 for v in rep if v[-2] >= q(.99))))
# latency by size bucket
for lo, hi in [(0, 10), (10, 50), (50, 150), (150, 1000)]:
    xs = sorted(x[0] for x in res if lo <= x[1] < hi)
    if xs: print('rows %d-%d: n=%d p50 %.2f p99 %.2f' % (lo, hi, len(xs), xs[len(xs)//2], xs[max(0, int(.99*len(xs))-1)]))
