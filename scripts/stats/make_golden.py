#!/usr/bin/env python3
"""Generate golden values for mdor-stats from independent reference implementations.

Usage (from the repository root):

    pip install lifelines statsmodels scipy numpy pandas
    python3 scripts/stats/make_golden.py

Writes crates/mdor-stats/tests/data/golden.json.  Every data set is generated from a fixed seed, so
re-running the script with the same package versions reproduces the file byte for byte.  The
versions used are recorded in the file.

References used per method:
- Kaplan-Meier counts, S(t), log-log CI: lifelines KaplanMeierFitter;
  Greenwood SE of S(t) and delayed entry: statsmodels SurvfuncRight;
  plain and log CIs are the standard transforms of statsmodels' Greenwood SE;
  median CI: statsmodels SurvfuncRight.quantile_ci (Brookmeyer-Crowley test inversion);
  restricted mean: lifelines.utils.restricted_mean_survival_time.
- Nelson-Aalen: lifelines NelsonAalenFitter(nelson_aalen_smoothing=False).
- Aalen-Johansen: statsmodels CumIncidenceRight (exact with ties; lifelines' fitter jitters ties).
- Log-rank (k groups, stratified, delayed entry): statsmodels survdiff; lifelines
  multivariate_logrank_test as a cross-check where there are no strata and no entry.
- Cox: statsmodels PHReg (Breslow and Efron, strata, entry); lifelines CoxPHFitter (Efron) as a
  cross-check.  The score test is computed from PHReg's own score and Hessian at beta = 0.
- When Rscript with the survival package is installed (Debian: r-base-core, r-cran-survival),
  scripts/stats/r_reference.R adds R's survfit (all three CI types, quantile.survfit medians,
  restricted mean), coxph, survdiff and multi-state survfit (Aalen-Johansen, with entry) values
  under "r_survival"; the committed file was generated with R available.
"""

import json
import math
import pathlib
import sys

import lifelines
import numpy as np
import pandas as pd
import scipy
import statsmodels
from lifelines import CoxPHFitter, KaplanMeierFitter, NelsonAalenFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import restricted_mean_survival_time
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import CumIncidenceRight, SurvfuncRight, survdiff

Z = float(scipy.stats.norm.ppf(0.975))
OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/mdor-stats/tests/data/golden.json"


def clean(x):
    """Turn numpy values into JSON-able Python values; non-finite floats become null."""
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [clean(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    return x


# ---------------------------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------------------------

def freireich():
    mp6 = [(6, 1), (6, 1), (6, 1), (6, 0), (7, 1), (9, 0), (10, 1), (10, 0), (11, 0), (13, 1),
           (16, 1), (17, 0), (19, 0), (20, 0), (22, 1), (23, 1), (25, 0), (32, 0), (32, 0),
           (34, 0), (35, 0)]
    placebo = [(t, 1) for t in [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]]
    rows = [(t, e, 0) for t, e in mp6] + [(t, e, 1) for t, e in placebo]
    time = [float(r[0]) for r in rows]
    event = [r[1] for r in rows]
    group = [r[2] for r in rows]
    return dict(name="freireich_6mp_placebo",
                description="Freireich et al. (1963) leukaemia remission times, 6-MP (group 0) vs placebo (group 1); many ties",
                time=time, event=event, group=group, covariates=[[float(g)] for g in group])


def simulated(name, description, seed, n, censor_rate, ties=None, entry=False, groups=2, strata=1,
              p=3, causes=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    beta = np.linspace(0.6, -0.4, p)
    group = rng.integers(0, groups, size=n)
    stratum = rng.integers(0, strata, size=n)
    lin = x @ beta + 0.3 * group + 0.2 * stratum
    t_event = rng.exponential(scale=np.exp(-lin) * 5.0)
    t_cens = rng.exponential(scale=5.0 * (1.0 - censor_rate) / max(censor_rate, 1e-9), size=n)
    time = np.minimum(t_event, t_cens)
    event = (t_event <= t_cens).astype(int)
    if ties is not None:
        # Round up to a grid so many records share times.
        time = np.ceil(time * ties) / ties
    cause = event.copy()
    if causes > 1:
        cause = np.where(event == 1, rng.integers(1, causes + 1, size=n), 0)
    d = dict(name=name, description=description, time=time.tolist(), event=event.tolist(),
             group=group.tolist(), covariates=x.tolist(), cause=cause.tolist())
    if strata > 1:
        d["strata"] = stratum.tolist()
    if entry:
        # Entry times on a half-offset grid so they never coincide with exit times.
        e = rng.uniform(0, 1, size=n) * time * 0.8
        if ties is not None:
            e = np.floor(e * ties) / ties + 0.5 / ties
            e = np.where(e < time, e, 0.0)
        e = np.where(rng.uniform(size=n) < 0.5, 0.0, e)
        d["entry"] = e.tolist()
    return d


def exact_half():
    rng = np.random.default_rng(14)
    time = [float(t) for t in range(1, 13)]
    event = [1] * 10 + [0, 0]
    return dict(name="exact_half", description="n=12, S(t) is exactly 1/2 on [6, 7): the median conventions differ",
                time=time, event=event, group=[i % 2 for i in range(12)],
                covariates=rng.normal(size=(12, 1)).tolist())


DATASETS = [
    freireich(),
    exact_half(),
    simulated("continuous_moderate_censoring", "n=200 continuous times, about 30% censored", 1, 200, 0.3),
    simulated("heavy_censoring", "n=300 continuous times, about 85% censored", 2, 300, 0.85),
    simulated("heavy_ties", "n=500 times on a grid of 0.5, many ties between events and censorings", 3, 500, 0.4, ties=2),
    simulated("delayed_entry", "n=300 continuous times with delayed entry for half the records", 4, 300, 0.3, entry=True),
    simulated("delayed_entry_ties", "n=400 gridded times with delayed entry on a half-offset grid", 5, 400, 0.3, ties=4, entry=True),
    simulated("small_tied", "n=12 gridded times, ties of events and censorings", 6, 12, 0.4, ties=1),
    simulated("three_groups", "n=600 gridded times, three groups", 7, 600, 0.5, ties=10, groups=3),
    simulated("stratified", "n=500 gridded times, two groups, three strata", 8, 500, 0.4, ties=5, strata=3),
    simulated("competing_ties", "n=400 gridded times, two competing causes", 9, 400, 0.3, ties=2, causes=2),
    simulated("competing_heavy_censoring", "n=300 continuous times, three causes, 70% censored", 10, 300, 0.7, causes=3),
    simulated("large", "n=3000 gridded times, five covariates", 11, 3000, 0.5, ties=20, p=5),
    simulated("three_groups_stratified", "n=450 continuous times, three groups, four strata", 13, 450, 0.35, groups=3, strata=4),
    simulated("competing_entry", "n=350 gridded times, two competing causes, delayed entry", 15, 350, 0.3, ties=4, causes=2, entry=True),
    simulated("stratified_entry", "n=400 gridded times, two strata, delayed entry", 12, 400, 0.4, ties=4, strata=2, entry=True),
]


# ---------------------------------------------------------------------------------------------
# Reference computations
# ---------------------------------------------------------------------------------------------

def km_reference(d):
    time = np.asarray(d["time"])
    event = np.asarray(d["event"])
    entry = np.asarray(d["entry"]) if "entry" in d else None
    out = {}
    sf = SurvfuncRight(time, event, entry=entry)
    s = sf.surv_prob
    se = sf.surv_prob_se
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = se / s
        log_lower = s * np.exp(-Z * sigma)
        log_upper = np.minimum(s * np.exp(Z * sigma), 1.0)
        plain_lower = np.maximum(s - Z * se, 0.0)
        plain_upper = np.minimum(s + Z * se, 1.0)
    out["event_times"] = sf.surv_times
    out["n_risk"] = sf.n_risk
    out["n_event"] = sf.n_events
    out["survival"] = s
    out["survival_std_error"] = se
    out["log_lower"] = log_lower
    out["log_upper"] = log_upper
    out["plain_lower"] = plain_lower
    out["plain_upper"] = plain_upper
    out["median_ci"] = {m: list(sf.quantile_ci(0.5, method=m)) for m in ("log", "linear", "cloglog")}
    out["median"] = sf.quantile(0.5)
    out["survfunc_source"] = "statsmodels SurvfuncRight"
    if entry is None:
        kmf = KaplanMeierFitter().fit(time, event)
        table = kmf.event_table.iloc[1:] if kmf.event_table.index[0] == 0 and kmf.event_table["removed"].iloc[0] == 0 else kmf.event_table
        out["all_times"] = table.index.values
        out["all_n_risk"] = table["at_risk"].values
        out["all_n_event"] = table["observed"].values
        out["all_n_censor"] = table["censored"].values
        ci = kmf.confidence_interval_
        sfun = kmf.survival_function_
        mask = np.isin(sfun.index.values, sf.surv_times)
        out["loglog_lower"] = ci.iloc[:, 0].values[mask]
        out["loglog_upper"] = ci.iloc[:, 1].values[mask]
        out["lifelines_survival"] = sfun.iloc[:, 0].values[mask]
        tau = float(np.quantile(time, 0.75))
        out["rmst_horizon"] = tau
        out["rmst"] = restricted_mean_survival_time(kmf, t=tau)
        # Cumulative revision at a few requested times, read off lifelines' step function.
        req = [float(np.quantile(time, q)) for q in (0.1, 0.33, 0.5, 0.9)]
        out["cumulative_revision_times"] = req
        out["cumulative_revision"] = [1.0 - float(kmf.survival_function_at_times(t).iloc[0]) for t in req]
    return out


def na_reference(d):
    if "entry" in d:
        return None
    time = np.asarray(d["time"])
    event = np.asarray(d["event"])
    naf = NelsonAalenFitter(nelson_aalen_smoothing=False).fit(time, event)
    h = naf.cumulative_hazard_.iloc[:, 0]
    table = naf.event_table
    keep = table["observed"].values > 0
    times = table.index.values[keep]
    return dict(source="lifelines NelsonAalenFitter(nelson_aalen_smoothing=False)",
                event_times=times,
                cumulative_hazard=h.loc[times].values,
                variance_binomial=naf._cumulative_sq.loc[times].values if hasattr(naf, "_cumulative_sq") else None)


def aj_reference(d):
    cause = np.asarray(d.get("cause", [0]))
    if cause.max() < 2 or "entry" in d:
        return None
    time = np.asarray(d["time"])
    ci = CumIncidenceRight(time, cause)
    return dict(source="statsmodels CumIncidenceRight", times=ci.times,
                cinc=[c for c in ci.cinc], cinc_se=[c for c in ci.cinc_se])


def logrank_reference(d):
    time = np.asarray(d["time"])
    event = np.asarray(d["event"])
    group = np.asarray(d["group"])
    entry = np.asarray(d["entry"]) if "entry" in d else None
    out = {}
    chi2, p = survdiff(time, event, group, entry=entry)
    out["chi_square"] = chi2
    out["p_value"] = p
    out["df"] = len(np.unique(group)) - 1
    out["source"] = "statsmodels survdiff"
    if "strata" in d and entry is None:
        # statsmodels 0.14/0.15 survdiff fails when strata and entry are combined (it indexes the
        # full entry array with a per-stratum mask), so stratified goldens are without entry.
        chi2s, ps = survdiff(time, event, group, strata=np.asarray(d["strata"]), entry=entry)
        out["stratified_chi_square"] = chi2s
        out["stratified_p_value"] = ps
    if entry is None:
        r = multivariate_logrank_test(time, group, event)
        out["lifelines_chi_square"] = r.test_statistic
    return out


def cox_reference(d):
    time = np.asarray(d["time"])
    event = np.asarray(d["event"])
    x = np.asarray(d["covariates"])
    entry = np.asarray(d["entry"]) if "entry" in d else None
    strata = np.asarray(d["strata"]) if "strata" in d else None
    out = {}
    for ties in ("breslow", "efron"):
        model = PHReg(time, x, status=event, entry=entry, strata=strata, ties=ties)
        res = model.fit(tol=1e-12, maxiter=200)
        beta = res.params
        cov = res.cov_params()
        ll0 = model.loglike(np.zeros_like(beta))
        u0 = model.score(np.zeros_like(beta))
        h0 = model.hessian(np.zeros_like(beta))
        score = float(u0 @ np.linalg.solve(-h0, u0))
        wald = float(beta @ np.linalg.solve(cov, beta))
        out[ties] = dict(coefficients=beta, std_errors=res.bse, log_likelihood=res.llf,
                         null_log_likelihood=ll0, likelihood_ratio=2 * (res.llf - ll0),
                         wald=wald, score=score)
    out["source"] = "statsmodels PHReg"
    if entry is None and strata is None:
        df = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
        df["T"] = time
        df["E"] = event
        cph = CoxPHFitter().fit(df, "T", "E")
        out["lifelines_efron_coefficients"] = cph.params_.values
    return out


def exact_limits_reference():
    """Exact Poisson (Garwood) and binomial (Clopper-Pearson) limits and Poisson p-values, scipy."""
    from scipy import stats
    cases = []
    for k, years in [(0, 100.0), (1, 250.5), (3, 12.0), (7, 1000.0), (25, 400.0), (120, 9876.5), (1000, 20000.0)]:
        for level in (0.95, 0.998):
            a = 1 - level
            lower = 0.0 if k == 0 else stats.chi2.ppf(a / 2, 2 * k) / 2
            upper = stats.chi2.ppf(1 - a / 2, 2 * (k + 1)) / 2
            cases.append(dict(revisions=k, years=years, level=level,
                              rate=100 * k / years, lower=100 * lower / years, upper=100 * upper / years))
    pvalues = []
    for o, e in [(1, 0.3), (2, 0.5), (5, 1.2), (10, 4.0), (30, 18.5), (200, 170.0), (3, 3.0)]:
        pvalues.append(dict(observed=o, expected=e, p_value=stats.poisson.sf(o - 1, e)))
    binomial = []
    for x, n in [(0, 10), (1, 10), (5, 20), (17, 40), (99, 100), (100, 100), (3, 1000)]:
        for level in (0.95, 0.998):
            a = 1 - level
            lower = 0.0 if x == 0 else stats.beta.ppf(a / 2, x, n - x + 1)
            upper = 1.0 if x == n else stats.beta.ppf(1 - a / 2, x + 1, n - x)
            binomial.append(dict(events=x, n=n, level=level, lower=lower, upper=upper))
    # Spiegelhalter (2005) interpolated exact funnel limits, from scipy's binomial/Poisson CDFs.
    funnel_binomial = []
    for n, theta in [(10, 0.5), (50, 0.1), (200, 0.03), (1000, 0.2), (37, 0.9)]:
        for p in (0.001, 0.025, 0.975, 0.999):
            r = int(stats.binom.ppf(p, n, theta))
            while stats.binom.cdf(r, n, theta) < p:
                r += 1
            at, below = stats.binom.cdf(r, n, theta), stats.binom.cdf(r - 1, n, theta)
            alpha = (at - p) / (at - below)
            funnel_binomial.append(dict(n=n, target=theta, p=p, limit=min(max((r - alpha) / n, 0.0), 1.0)))
    funnel_poisson = []
    for e in (0.5, 1.0, 4.2, 25.0, 310.0):
        for p in (0.001, 0.025, 0.975, 0.999):
            r = int(stats.poisson.ppf(p, e))
            while stats.poisson.cdf(r, e) < p:
                r += 1
            at, below = stats.poisson.cdf(r, e), stats.poisson.cdf(r - 1, e)
            alpha = (at - p) / (at - below)
            funnel_poisson.append(dict(expected=e, p=p, limit=max(r - alpha, 0.0)))
    return dict(source="scipy.stats chi2.ppf, poisson.sf, beta.ppf, binom.cdf, poisson.cdf", garwood=cases,
                poisson_p_values=pvalues, clopper_pearson=binomial,
                funnel_binomial=funnel_binomial, funnel_poisson=funnel_poisson)


def logistic_reference(d):
    """Logistic regression of the event indicator on the covariates, statsmodels Logit."""
    import statsmodels.api as sm
    if d["name"] == "freireich_6mp_placebo":
        # Every placebo patient relapsed: quasi-complete separation, the MLE does not exist.
        return dict(separated=True)
    x = sm.add_constant(np.asarray(d["covariates"]))
    y = np.asarray(d["event"])
    res = sm.Logit(y, x).fit(method="newton", tol=1e-14, maxiter=100, disp=0)
    if np.max(res.bse) > 1e3:
        # Standard errors in the thousands mean a (quasi-)separated fit with no finite MLE.
        return dict(separated=True, statsmodels_coefficients=res.params)
    return dict(source="statsmodels Logit", coefficients=res.params, std_errors=res.bse,
                log_likelihood=res.llf)


def r_reference(d):
    """R survival (survfit, coxph, survdiff, multi-state survfit) via scripts/stats/r_reference.R."""
    import csv
    import shutil
    import subprocess
    import tempfile
    if shutil.which("Rscript") is None:
        return None
    n = len(d["time"])
    x = np.asarray(d["covariates"])
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "data.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["time", "event", "entry", "group", "strata", "cause"] + [f"x{k + 1}" for k in range(x.shape[1])])
            for i in range(n):
                w.writerow([repr(d["time"][i]), d["event"][i], repr(d.get("entry", [0.0] * n)[i]),
                            d["group"][i], d.get("strata", [0] * n)[i], d.get("cause", d["event"])[i]]
                           + [repr(v) for v in x[i]])
        tau = float(np.quantile(np.asarray(d["time"]), 0.75))
        script = pathlib.Path(__file__).with_name("r_reference.R")
        text = subprocess.run(["Rscript", str(script), str(path), repr(tau)], check=True,
                              capture_output=True, text=True).stdout
    out = {}
    for line in text.splitlines():
        key, _, values = line.partition("\t")
        out[key] = [None if v in ("NA", "NaN", "Inf", "-Inf") else float(v) for v in values.split(",") if v != ""]
    return out


def r_versions():
    import shutil
    import subprocess
    if shutil.which("Rscript") is None:
        return None
    return subprocess.run(["Rscript", "-e", "cat(R.version.string, '; survival', as.character(packageVersion('survival')))"],
                          check=True, capture_output=True, text=True).stdout.strip()


def main():
    datasets = []
    for d in DATASETS:
        res = dict(kaplan_meier=km_reference(d), logrank=logrank_reference(d), cox=cox_reference(d),
                   logistic=logistic_reference(d))
        na = na_reference(d)
        if na is not None:
            res["nelson_aalen"] = na
        aj = aj_reference(d)
        if aj is not None:
            res["aalen_johansen"] = aj
        r = r_reference(d)
        if r is not None:
            res["r_survival"] = r
        d = dict(d)
        d["reference"] = res
        datasets.append(d)
        print(f"{d['name']}: n={len(d['time'])} events={sum(d['event'])}", file=sys.stderr)
    doc = dict(generator="scripts/stats/make_golden.py",
               versions=dict(python=sys.version.split()[0], lifelines=lifelines.__version__,
                             statsmodels=statsmodels.__version__, scipy=scipy.__version__,
                             numpy=np.__version__, pandas=pd.__version__, r=r_versions()),
               z_975=Z, exact_limits=exact_limits_reference(), datasets=datasets)
    OUT.write_text(json.dumps(clean(doc), indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
