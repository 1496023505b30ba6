# Reference values from R's survival package for one data set, called by make_golden.py.
#
# Usage: Rscript r_reference.R INPUT.csv TAU > OUTPUT.txt
# INPUT.csv has columns time, event, entry (may be all zero), group, strata, cause, x1..xp.
# Cox models are not refitted here: statsmodels PHReg already covers them.
# Each output line is "key<TAB>comma-separated values", with NA for missing values.
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
tau <- as.numeric(args[2])
has_entry <- any(d$entry > 0)
out <- function(key, values) {
  cat(key, "\t", paste(format(values, digits = 17, scientific = TRUE, trim = TRUE), collapse = ","), "\n", sep = "")
}
surv <- if (has_entry) with(d, Surv(entry, time, event)) else with(d, Surv(time, event))

for (type in c("log", "plain", "log-log")) {
  fit <- survfit(surv ~ 1, conf.type = type)
  key <- gsub("-", "", type)
  if (type == "log") {
    out("km_time", fit$time)
    out("km_n_risk", fit$n.risk)
    out("km_n_event", fit$n.event)
    out("km_n_censor", fit$n.censor)
    out("km_surv", fit$surv)
    out("km_std_err", fit$std.err)
    rm <- summary(fit, rmean = tau)$table
    out("km_rmean", c(tau, rm[["rmean"]], rm[["se(rmean)"]]))
  }
  out(paste0("km_lower_", key), fit$lower)
  out(paste0("km_upper_", key), fit$upper)
  q <- quantile(fit, 0.5)
  out(paste0("km_median_", key), c(q$quantile, q$lower, q$upper))
}

if (!has_entry) {
  sd <- survdiff(Surv(time, event) ~ group, data = d)
  out("logrank_chisq", sd$chisq)
  if (length(unique(d$strata)) > 1) {
    sds <- survdiff(Surv(time, event) ~ group + strata(strata), data = d)
    out("logrank_stratified_chisq", sds$chisq)
  }
}

if (max(d$cause) >= 2) {
  status <- factor(d$cause, levels = 0:max(d$cause))
  d$id <- seq_len(nrow(d))
  ms <- if (has_entry) survfit(Surv(entry, time, status) ~ 1, data = d, id = id) else survfit(Surv(time, status) ~ 1, data = d)
  out("aj_time", ms$time)
  for (k in seq_len(max(d$cause))) {
    out(paste0("aj_cause_", k), ms$pstate[, k + 1])
  }
}
