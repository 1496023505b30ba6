//! The Cox design of a device class for survivorship hazard ratios: every unit of the class
//! with its follow-up, revision, age, sex and indication, sorted and standardised once, so that
//! each report on the class fits only its own group indicator against it.
//!
//! **Indication** is categorical: one indicator column per level against the most common level
//! (the reference). Levels with fewer than `MIN_LEVEL_REVISIONS` revisions cannot be estimated
//! on their own (a level without revisions drives its coefficient to −∞), so they are pooled
//! into one `other` level, which joins the reference when it too has too few. Procedures whose
//! dataset records no indication form their own level, `not_recorded`, rather than being
//! dropped. When a group is exactly a set of whole levels (every device used for an indication
//! no other device is used for), its indicator is a sum of indication columns and the two
//! cannot be told apart; that report is fitted without indication and says so.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use mdor_stats::{CoxDesign, CoxFit, CoxOptions, StatsError, SurvivalData, cox_regression};

use crate::surveillance::extract::Exit;

/// Fewest revisions an indication level needs for a coefficient of its own.
pub(crate) const MIN_LEVEL_REVISIONS: usize = 5;

/// The level of procedures whose dataset records no indication.
pub(crate) const NOT_RECORDED: &str = "not_recorded";

/// The pooled level of indications with too few revisions each.
pub(crate) const OTHER: &str = "other";

/// One unit of the class: follow-up, exit and covariates.
pub(crate) struct Unit {
    pub years: f64,
    pub exit: Exit,
    pub age: f64,
    pub male: bool,
    /// Index into the cohort's indications.
    pub indication: Option<u32>,
    pub in_group: bool,
    pub stratum: u32,
}

/// How a class's indications became indicator columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndicationCoding {
    /// The level every other is compared with: the most common.
    pub reference: String,
    /// The levels with a column each, in column order.
    pub levels: Vec<String>,
    /// Indications pooled into the reference or `other` for too few revisions.
    pub pooled: Vec<String>,
    /// Each unit's column (`levels` index + 1), 0 for the reference.
    unit_level: Vec<u32>,
}

impl IndicationCoding {
    /// Codes the units' indications, or `None` when they do not vary (after pooling).
    fn new(units: &[Unit], names: &[String]) -> Option<IndicationCoding> {
        // (units, revisions) per indication, in code order so the coding is deterministic.
        let mut counts: BTreeMap<Option<u32>, (usize, usize)> = BTreeMap::new();
        for u in units {
            let entry = counts.entry(u.indication).or_default();
            entry.0 += 1;
            entry.1 += usize::from(u.exit == Exit::Revision);
        }
        if counts.len() < 2 {
            return None;
        }
        let name = |key: Option<u32>| match key {
            Some(k) => names
                .get(k as usize)
                .cloned()
                .unwrap_or_else(|| format!("indication {k}")),
            None => NOT_RECORDED.to_string(),
        };
        // The most units; the first in code order among equals.
        let reference = counts
            .iter()
            .fold(
                None,
                |best: Option<(Option<u32>, usize)>, (&key, &(n, _))| match best {
                    Some((_, most)) if most >= n => best,
                    _ => Some((key, n)),
                },
            )
            .map(|(key, _)| key)?;
        let mut separate = Vec::new();
        let mut sparse = Vec::new();
        for (&key, &(_, revisions)) in &counts {
            if key == reference {
                continue;
            }
            if revisions >= MIN_LEVEL_REVISIONS {
                separate.push(key);
            } else {
                sparse.push(key);
            }
        }
        let sparse_revisions: usize = sparse.iter().map(|k| counts[k].1).sum();
        let other_column = (!sparse.is_empty() && sparse_revisions >= MIN_LEVEL_REVISIONS)
            .then_some(separate.len() as u32 + 1);
        if separate.is_empty() && other_column.is_none() {
            return None;
        }
        let mut column: HashMap<Option<u32>, u32> = separate
            .iter()
            .enumerate()
            .map(|(c, &key)| (key, c as u32 + 1))
            .collect();
        for &key in &sparse {
            column.insert(key, other_column.unwrap_or(0));
        }
        let mut levels: Vec<String> = separate.iter().map(|&k| name(k)).collect();
        if other_column.is_some() {
            levels.push(OTHER.to_string());
        }
        Some(IndicationCoding {
            reference: name(reference),
            levels,
            pooled: sparse.iter().map(|&k| name(k)).collect(),
            unit_level: units
                .iter()
                .map(|u| column.get(&u.indication).copied().unwrap_or(0))
                .collect(),
        })
    }

    /// Whether the group is a union of whole levels, so that its indicator is a combination
    /// of the indication columns (and the baseline) and cannot be estimated beside them.
    fn confounded_with(&self, leading: &[f64]) -> bool {
        let columns = self.levels.len() + 1;
        let mut in_group = vec![0usize; columns];
        let mut total = vec![0usize; columns];
        for (&level, &x) in self.unit_level.iter().zip(leading) {
            total[level as usize] += 1;
            in_group[level as usize] += usize::from(x != 0.0);
        }
        in_group.iter().zip(&total).all(|(&g, &n)| g == 0 || g == n)
    }
}

/// The covariates of a class besides the group indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Covariate {
    Age,
    Sex,
}

/// The Cox design of a class's units. At 2M procedures a hip-cup class has about 520,000
/// units, and sorting and standardising them was a third of a report's time.
pub(crate) struct ClassDesign {
    data: SurvivalData,
    strata: Option<Vec<u32>>,
    /// Age and sex, those that vary (one sex only, as for breast implants, cannot be fitted).
    base: Vec<Covariate>,
    base_values: Vec<f64>,
    indication: Option<IndicationCoding>,
    /// `None` when nothing besides the group indicator varies: it is fitted alone.
    design: Option<CoxDesign>,
}

/// A hazard ratio fit and what it was adjusted for.
pub(crate) struct ClassFit {
    pub fit: CoxFit,
    pub adjusted_for: Vec<&'static str>,
    /// The indication coding, when indication was adjusted for.
    pub indication: Option<IndicationCoding>,
    /// Why indication was not adjusted for although it varies.
    pub warning: Option<String>,
}

impl ClassDesign {
    pub(crate) fn new(
        units: &[Unit],
        stratified: bool,
        indications: &[String],
    ) -> Result<ClassDesign, StatsError> {
        let time: Vec<f64> = units.iter().map(|u| u.years).collect();
        let event: Vec<bool> = units.iter().map(|u| u.exit == Exit::Revision).collect();
        let data = SurvivalData::from_vecs(time, event)?;
        let age_varies = units.iter().any(|u| u.age != units[0].age);
        let sex_varies = units.iter().any(|u| u.male != units[0].male);
        let base: Vec<Covariate> = [(Covariate::Age, age_varies), (Covariate::Sex, sex_varies)]
            .into_iter()
            .filter_map(|(c, varies)| varies.then_some(c))
            .collect();
        let base_values = row_major(units, &base);
        let indication = IndicationCoding::new(units, indications);
        let strata: Option<Vec<u32>> =
            stratified.then(|| units.iter().map(|u| u.stratum).collect());
        let n_levels = indication.as_ref().map_or(0, |c| c.levels.len());
        let width = base.len() + n_levels;
        let design = if width == 0 {
            None
        } else {
            let mut covariates = Vec::with_capacity(units.len() * width);
            let b = base.len();
            for i in 0..units.len() {
                covariates.extend_from_slice(&base_values[i * b..(i + 1) * b]);
                if let Some(coding) = &indication {
                    let level = coding.unit_level[i] as usize;
                    covariates.extend((1..=n_levels).map(|c| f64::from(u8::from(c == level))));
                }
            }
            Some(CoxDesign::new(
                &data,
                &covariates,
                width,
                strata.as_deref(),
            )?)
        };
        Ok(ClassDesign {
            data,
            strata,
            base,
            base_values,
            indication,
            design,
        })
    }

    /// Fits the group indicator `leading` (one value per unit) against the design.
    pub(crate) fn fit(&self, leading: &[f64]) -> Result<ClassFit, StatsError> {
        let names = |base: &[Covariate]| -> Vec<&'static str> {
            base.iter()
                .map(|c| match c {
                    Covariate::Age => "age",
                    Covariate::Sex => "sex",
                })
                .collect()
        };
        if let Some(coding) = &self.indication
            && coding.confounded_with(leading)
        {
            // Fitted directly, without the class's design: rare, and only for this report.
            let p = self.base.len() + 1;
            let mut covariates = Vec::with_capacity(leading.len() * p);
            for (i, &x) in leading.iter().enumerate() {
                covariates.push(x);
                covariates
                    .extend_from_slice(&self.base_values[i * self.base.len()..][..self.base.len()]);
            }
            let fit = cox_regression(
                &self.data,
                &covariates,
                p,
                self.strata.as_deref(),
                CoxOptions::default(),
            )?;
            return Ok(ClassFit {
                fit,
                adjusted_for: names(&self.base),
                indication: None,
                warning: Some(
                    "indication not adjusted for: the group's indications are not used for other \
                     devices of the class, so the two cannot be separated"
                        .into(),
                ),
            });
        }
        let fit = match &self.design {
            Some(design) => design.fit_with_leading(leading, CoxOptions::default())?,
            None => cox_regression(
                &self.data,
                leading,
                1,
                self.strata.as_deref(),
                CoxOptions::default(),
            )?,
        };
        let mut adjusted_for = names(&self.base);
        if self.indication.is_some() {
            adjusted_for.push("indication");
        }
        Ok(ClassFit {
            fit,
            adjusted_for,
            indication: self.indication.clone(),
            warning: None,
        })
    }
}

/// The base covariates of every unit, row-major.
fn row_major(units: &[Unit], base: &[Covariate]) -> Vec<f64> {
    let mut values = Vec::with_capacity(units.len() * base.len());
    for u in units {
        for c in base {
            values.push(match c {
                Covariate::Age => u.age,
                Covariate::Sex => f64::from(u8::from(u.male)),
            });
        }
    }
    values
}

/// A cohort's class designs by (device types of the class, stratified); each is built once, by
/// the first report on its class, and lives as long as the cohort.
#[derive(Default)]
pub(crate) struct ClassDesigns {
    built: Mutex<DesignMap>,
}

/// A class's design, or why it could not be built, by (device types, stratified).
type DesignMap = HashMap<(Vec<u32>, bool), Arc<Result<ClassDesign, StatsError>>>;

impl ClassDesigns {
    pub(crate) fn get_or_build(
        &self,
        class_types: &[u32],
        stratified: bool,
        units: &[Unit],
        indications: &[String],
    ) -> Arc<Result<ClassDesign, StatsError>> {
        let key = (class_types.to_vec(), stratified);
        if let Some(design) = self.lock().get(&key) {
            return Arc::clone(design);
        }
        // Built outside the lock: two first reports on one class may both build it, and the
        // second simply replaces the first.
        let design = Arc::new(ClassDesign::new(units, stratified, indications));
        self.lock().insert(key, Arc::clone(&design));
        design
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DesignMap> {
        // A poisoned lock only means another report panicked; the designs are still whole.
        self.built.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clone for ClassDesigns {
    /// A cloned cohort starts without designs; they are rebuilt on demand.
    fn clone(&self) -> Self {
        ClassDesigns::default()
    }
}

impl std::fmt::Debug for ClassDesigns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClassDesigns({} built)", self.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(indication: Option<u32>, revised: bool, in_group: bool) -> Unit {
        Unit {
            years: 1.0,
            exit: if revised {
                Exit::Revision
            } else {
                Exit::Censored
            },
            age: 70.0,
            male: false,
            indication,
            in_group,
            stratum: 0,
        }
    }

    fn names() -> Vec<String> {
        ["osteoarthritis", "fracture", "tumour"]
            .map(String::from)
            .to_vec()
    }

    /// `n` units of an indication, `revised` of them revised.
    fn level(indication: Option<u32>, n: usize, revised: usize) -> Vec<Unit> {
        (0..n)
            .map(|i| unit(indication, i < revised, false))
            .collect()
    }

    #[test]
    fn the_most_common_indication_is_the_reference_and_others_get_a_column_each() {
        let units: Vec<Unit> = [
            level(Some(0), 100, 10),
            level(Some(1), 30, 6),
            level(None, 20, 5),
        ]
        .into_iter()
        .flatten()
        .collect();
        let coding = IndicationCoding::new(&units, &names()).unwrap();
        assert_eq!(coding.reference, "osteoarthritis");
        assert_eq!(coding.levels, vec!["not_recorded", "fracture"]);
        assert!(coding.pooled.is_empty());
        assert_eq!(coding.unit_level[0], 0);
        assert_eq!(coding.unit_level[100], 2);
        assert_eq!(coding.unit_level[149], 1);
    }

    #[test]
    fn indications_with_few_revisions_are_pooled_into_other_or_the_reference() {
        // fracture 3 and tumour 2 revisions: 5 together, enough for `other`.
        let units: Vec<Unit> = [
            level(Some(0), 100, 10),
            level(Some(1), 30, 3),
            level(Some(2), 10, 2),
        ]
        .into_iter()
        .flatten()
        .collect();
        let coding = IndicationCoding::new(&units, &names()).unwrap();
        assert_eq!(coding.levels, vec!["other"]);
        assert_eq!(coding.pooled, vec!["fracture", "tumour"]);
        assert!(coding.unit_level[100..].iter().all(|&l| l == 1));
        // tumour alone (2 revisions) is too few even pooled: no indication column at all.
        let units: Vec<Unit> = [level(Some(0), 100, 10), level(Some(2), 10, 2)]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(IndicationCoding::new(&units, &names()), None);
    }

    #[test]
    fn a_group_made_of_whole_indication_levels_is_confounded_with_them() {
        let units: Vec<Unit> = [level(Some(0), 100, 10), level(Some(1), 30, 6)]
            .into_iter()
            .flatten()
            .collect();
        let coding = IndicationCoding::new(&units, &names()).unwrap();
        let every_fracture: Vec<f64> = (0..130).map(|i| f64::from(u8::from(i >= 100))).collect();
        assert!(coding.confounded_with(&every_fracture));
        let some_fractures: Vec<f64> = (0..130).map(|i| f64::from(u8::from(i >= 110))).collect();
        assert!(!coding.confounded_with(&some_fractures));
        let mixed: Vec<f64> = (0..130).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
        assert!(!coding.confounded_with(&mixed));
    }

    #[test]
    fn a_group_confounded_with_indication_is_fitted_without_it_and_says_so() {
        // Fractures revise sooner; the group is exactly the fractures.
        let units: Vec<Unit> = (0..200)
            .map(|i| {
                let fracture = i >= 150;
                Unit {
                    years: 1.0 + f64::from(i % 17) / 3.0,
                    exit: if i % if fracture { 2 } else { 5 } == 0 {
                        Exit::Revision
                    } else {
                        Exit::Censored
                    },
                    age: 50.0 + f64::from(i % 30),
                    male: i % 3 == 0,
                    indication: Some(u32::from(fracture)),
                    in_group: fracture,
                    stratum: 0,
                }
            })
            .collect();
        let design = ClassDesign::new(&units, false, &names()).unwrap();
        let leading: Vec<f64> = units
            .iter()
            .map(|u| f64::from(u8::from(u.in_group)))
            .collect();
        let fitted = design.fit(&leading).unwrap();
        assert_eq!(fitted.adjusted_for, ["age", "sex"]);
        assert!(fitted.indication.is_none());
        assert!(
            fitted
                .warning
                .unwrap()
                .starts_with("indication not adjusted for")
        );
        assert!(fitted.fit.hazard_ratios[0] > 1.0);
        // Half the fractures in the group: adjusted for indication, no warning.
        let half: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i >= 175))).collect();
        let fitted = design.fit(&half).unwrap();
        assert_eq!(fitted.adjusted_for, ["age", "sex", "indication"]);
        assert!(fitted.warning.is_none());
        assert_eq!(fitted.fit.hazard_ratios.len(), 4);
    }
}
