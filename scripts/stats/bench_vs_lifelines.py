#!/usr/bin/env python3
"""Time mdor-stats against lifelines on identical, seeded data, and print the speed ratios.

Usage (from the repository root):

    pip install lifelines numpy pandas
    export CARGO_TARGET_DIR=/work/target-stats   # optional
    python3 scripts/stats/bench_vs_lifelines.py [--km-records 10000000] [--km-groups 1000]
                                                [--cox-records 1000000] [--cox-covariates 5]

The script generates the data with numpy (seed 20261121), writes it to a binary file, times
lifelines in this process, then runs the release-built example binaries `bench_km` and `bench_cox`
on the same file (Rust timings include input validation, exclude file reading).  Both wall-clock
and process CPU time are reported: on a shared machine CPU time excludes waiting for a core.
lifelines may use more than one thread inside numpy; its CPU time then exceeds its wall time.

- Kaplan-Meier: lifelines KaplanMeierFitter.fit per group (it computes Greenwood log-log intervals
  as part of fit); mdor-stats kaplan_meier_by_group with Greenwood log intervals.
- Cox: lifelines CoxPHFitter (Efron ties) vs mdor-stats cox_regression (Efron ties).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import lifelines
import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter

SEED = 20261121


def km_data(n, groups, rng):
    group = rng.integers(0, groups, size=n).astype(np.uint32)
    # Follow-up in days up to 15 years: implant failure is rare, censoring is heavy and tied.
    t_fail = rng.exponential(scale=365.25 * 40, size=n)
    t_cens = rng.uniform(1, 365.25 * 15, size=n)
    t = np.ceil(np.minimum(t_fail, t_cens))
    e = (t_fail <= t_cens).astype(np.uint8)
    return t, e, group


def cox_data(n, p, rng):
    x = rng.normal(size=(n, p))
    beta = np.linspace(0.5, -0.3, p)
    t_fail = rng.exponential(scale=np.exp(-(x @ beta)) * 3650.0)
    t_cens = rng.uniform(1, 365.25 * 15, size=n)
    t = np.ceil(np.minimum(t_fail, t_cens))
    e = (t_fail <= t_cens).astype(np.uint8)
    return t, e, x


def run_example(name, path, repeats):
    cmd = ["cargo", "run", "--release", "-j", "1", "-q", "-p", "mdor-stats", "--example", name, "--", path, str(repeats)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
    fields = dict(kv.split("=", 1) for kv in out.split(" ") if "=" in kv and not kv.startswith("coefficients"))
    return float(fields["min_seconds"]), float(fields["min_cpu_seconds"]), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--km-records", type=int, default=10_000_000)
    ap.add_argument("--km-groups", type=int, default=1000)
    ap.add_argument("--cox-records", type=int, default=1_000_000)
    ap.add_argument("--cox-covariates", type=int, default=5)
    ap.add_argument("--skip-cox", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(SEED)
    print(f"lifelines {lifelines.__version__}, numpy {np.__version__}, pandas {pd.__version__}, python {sys.version.split()[0]}")

    with tempfile.TemporaryDirectory() as tmp:
        t, e, g = km_data(args.km_records, args.km_groups, rng)
        km_path = os.path.join(tmp, "km.bin")
        with open(km_path, "wb") as f:
            f.write(np.uint64(len(t)).tobytes())
            f.write(t.astype("<f8").tobytes())
            f.write(e.tobytes())
            f.write(g.astype("<u4").tobytes())
        rust_km, rust_km_cpu, rust_km_line = run_example("bench_km", km_path, 5)
        start = time.perf_counter()
        cpu_start = time.process_time()
        order = np.argsort(g, kind="stable")
        bounds = np.flatnonzero(np.diff(g[order])) + 1
        for idx in np.split(order, bounds):
            KaplanMeierFitter().fit(t[idx], e[idx])
        py_km = time.perf_counter() - start
        py_km_cpu = time.process_time() - cpu_start
        print(f"KM  records={args.km_records} groups={args.km_groups}: wall lifelines {py_km:.3f} s, mdor-stats {rust_km:.3f} s, ratio {py_km / rust_km:.1f}x; "
              f"cpu lifelines {py_km_cpu:.3f} s, mdor-stats {rust_km_cpu:.3f} s, ratio {py_km_cpu / max(rust_km_cpu, 1e-9):.1f}x")
        print(f"    rust: {rust_km_line}")

        if not args.skip_cox:
            t, e, x = cox_data(args.cox_records, args.cox_covariates, rng)
            cox_path = os.path.join(tmp, "cox.bin")
            with open(cox_path, "wb") as f:
                f.write(np.uint64(len(t)).tobytes())
                f.write(np.uint64(x.shape[1]).tobytes())
                f.write(t.astype("<f8").tobytes())
                f.write(e.tobytes())
                f.write(np.ascontiguousarray(x).astype("<f8").tobytes())
            rust_cox, rust_cox_cpu, rust_cox_line = run_example("bench_cox", cox_path, 3)
            df = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
            df["T"] = t
            df["E"] = e
            start = time.perf_counter()
            cpu_start = time.process_time()
            cph = CoxPHFitter().fit(df, "T", "E")
            py_cox = time.perf_counter() - start
            py_cox_cpu = time.process_time() - cpu_start
            print(f"Cox records={args.cox_records} covariates={args.cox_covariates}: wall lifelines {py_cox:.3f} s, mdor-stats {rust_cox:.3f} s, ratio {py_cox / rust_cox:.1f}x; "
                  f"cpu lifelines {py_cox_cpu:.3f} s, mdor-stats {rust_cox_cpu:.3f} s, ratio {py_cox_cpu / max(rust_cox_cpu, 1e-9):.1f}x")
            print(f"    lifelines coefficients: {cph.params_.values.tolist()}")
            print(f"    rust: {rust_cox_line}")


if __name__ == "__main__":
    main()
