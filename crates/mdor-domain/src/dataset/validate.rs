//! The validation engine: checks one record against one dataset definition and reports every
//! problem at once, errors and warnings apart.
//!
//! The order of work is fixed: each field is read by its type (so that a bad value is
//! reported once, by its parser); group item counts are checked; then every rule runs over
//! the values that could be read, once or per item of its group. A rule whose fields could
//! not be read says nothing, so one typo never produces a cascade of messages.
//! Warnings (not in the register, expired at implant, implausible values and ages) never stop
//! a record; the caller decides what to do with them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::dataset::definition::{
    Condition, DatasetDefinition, FieldRef, FieldType, Operand, Rule, RuleKind, Target, Test,
};
use crate::dataset::input::{RecordInput, in_sentence};
use crate::dataset::value::{RawValue, Value, parse_value};
use crate::identifiers::{Laterality, Slug};
use crate::record::FieldError;
use crate::udi::UdiDi;

/// What the engine needs to know from outside the record. Implemented by the caller: the
/// service looks the record's UDI-DIs up in the register before validating (`FixedContext`
/// holds the answers), tests give a fixed date.
pub trait ValidationContext {
    /// The date that future dates and two-digit UDI years are judged against.
    fn today(&self) -> NaiveDate;
    /// The device type of a register entry, or `None` when the UDI-DI is not in the register.
    fn register_device_type(&self, udi_di: &UdiDi) -> Option<Slug>;
}

/// A context with a fixed date and a register given as a map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedContext {
    pub today: NaiveDate,
    pub register: BTreeMap<UdiDi, Slug>,
}

impl FixedContext {
    /// A context whose register is empty: every device is warned as not in the register.
    pub fn new(today: NaiveDate) -> FixedContext {
        FixedContext {
            today,
            register: BTreeMap::new(),
        }
    }
}

impl ValidationContext for FixedContext {
    fn today(&self) -> NaiveDate {
        self.today
    }

    fn register_device_type(&self, udi_di: &UdiDi) -> Option<Slug> {
        self.register.get(udi_di).cloned()
    }
}

/// Everything found in one record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValidationReport {
    /// Problems that stop the record being accepted.
    pub errors: Vec<FieldError>,
    /// Things a person should look at; the record can still be accepted.
    pub warnings: Vec<FieldError>,
    /// The canonical value of every field that could be read, by path (`devices[0].udi` holds
    /// the UDI-DI), for storing or showing back.
    pub values: BTreeMap<String, String>,
}

impl ValidationReport {
    /// True when there are no errors (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

impl DatasetDefinition {
    /// Checks a normalised record.
    pub fn validate(
        &self,
        input: &RecordInput,
        context: &dyn ValidationContext,
    ) -> ValidationReport {
        Checker::run(self, input, context)
    }

    /// Checks a JSON record (see `RecordInput::from_json` for its shape).
    pub fn validate_json(
        &self,
        record: &serde_json::Value,
        context: &dyn ValidationContext,
    ) -> ValidationReport {
        self.validate(&RecordInput::from_json(self, record), context)
    }

    /// Checks one CSV row given as column name → cell (see `RecordInput::from_csv_row`).
    pub fn validate_csv_row(
        &self,
        row: &BTreeMap<String, String>,
        context: &dyn ValidationContext,
    ) -> ValidationReport {
        self.validate(&RecordInput::from_csv_row(self, row), context)
    }
}

/// A field after reading.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Absent,
    /// Given but unreadable; already reported.
    Invalid,
    Value(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Yes,
    No,
    Unknown,
}

impl Truth {
    fn of(b: bool) -> Truth {
        if b { Truth::Yes } else { Truth::No }
    }
}

/// Which group item a rule is being checked for; top-level fields read the same in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scope {
    item: Option<ItemRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ItemRef {
    group: usize,
    /// Index into the group's read items.
    index: usize,
    /// 0-based position in the input, as paths show it.
    position: usize,
}

const TOP: Scope = Scope { item: None };

/// A field's label as a message names it, e.g. `UDI of device 2` for a group item.
struct FieldLabel<'a> {
    label: &'a str,
    /// The group's label and the item's number (1-based) for a field of a group item.
    item: Option<(&'a str, usize)>,
}

impl std::fmt::Display for FieldLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.item {
            Some((group, number)) => write!(f, "{} of {} {number}", self.label, in_sentence(group)),
            None => f.write_str(self.label),
        }
    }
}

/// One group item after reading: its 0-based position in the input and its fields.
struct Item {
    position: usize,
    slots: Vec<Slot>,
}

struct Checker<'a> {
    definition: &'a DatasetDefinition,
    context: &'a dyn ValidationContext,
    top: Vec<Slot>,
    groups: Vec<Vec<Item>>,
    /// Register device types of the devices in the record.
    device_types: Vec<Slug>,
    report: ValidationReport,
}

impl<'a> Checker<'a> {
    fn run(
        definition: &'a DatasetDefinition,
        input: &RecordInput,
        context: &'a dyn ValidationContext,
    ) -> ValidationReport {
        let mut checker = Checker {
            definition,
            context,
            top: Vec::new(),
            groups: Vec::new(),
            device_types: Vec::new(),
            report: ValidationReport {
                errors: input.problems.clone(),
                ..ValidationReport::default()
            },
        };
        // Not a record at all (JSON that is not an object): listing every required field as
        // missing would only bury the one problem.
        if input.not_a_record {
            return checker.report;
        }
        checker.read_fields(input);
        checker.check_devices();
        checker.check_plausibility();
        for rule in &definition.rules {
            checker.check_rule(rule);
        }
        dedup(&mut checker.report.errors);
        dedup(&mut checker.report.warnings);
        checker.report
    }

    fn error(&mut self, field: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.report
            .errors
            .push(FieldError::new(field, code, message));
    }

    fn warning(
        &mut self,
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.report
            .warnings
            .push(FieldError::new(field, code, message));
    }

    fn read_fields(&mut self, input: &RecordInput) {
        let definition = self.definition;
        for (index, field) in definition.fields().iter().enumerate() {
            let slot = self.read(
                FieldRef { group: None, index },
                TOP,
                field.name().to_string(),
                input.fields.get(&index),
            );
            self.top.push(slot);
        }
        for (group_index, group) in definition.groups().iter().enumerate() {
            let raw_items = input.groups.get(group_index);
            let n_items = raw_items.map_or(0, BTreeMap::len);
            if n_items < group.min_items() {
                let label = in_sentence(group.label());
                if n_items == 0 && group.min_items() == 1 {
                    self.error(
                        group.name(),
                        "required",
                        format!("At least one {label} is required"),
                    );
                } else if n_items == 0 {
                    self.error(
                        group.name(),
                        "required",
                        format!(
                            "At least {} {label} entries are required",
                            group.min_items()
                        ),
                    );
                } else {
                    self.error(
                        group.name(),
                        "too_few",
                        format!(
                            "At least {} {label} entries are required; {n_items} given",
                            group.min_items()
                        ),
                    );
                }
            }
            let mut items = Vec::new();
            for (&position, raw_item) in raw_items.into_iter().flatten() {
                let scope = Scope {
                    item: Some(ItemRef {
                        group: group_index,
                        index: items.len(),
                        position,
                    }),
                };
                let mut slots = Vec::new();
                for (index, field) in group.fields().iter().enumerate() {
                    let slot = self.read(
                        FieldRef {
                            group: Some(group_index),
                            index,
                        },
                        scope,
                        format!("{}[{position}].{}", group.name(), field.name()),
                        raw_item.get(&index),
                    );
                    slots.push(slot);
                }
                items.push(Item { position, slots });
            }
            self.groups.push(items);
        }
    }

    /// Reads one field, reporting a missing required value or an unreadable one.
    fn read(
        &mut self,
        field: FieldRef,
        scope: Scope,
        path: String,
        raw: Option<&RawValue>,
    ) -> Slot {
        let definition = self.definition;
        let field_definition = definition.field(field);
        let label = self.field_label(field, scope);
        let Some(raw) = raw else {
            if field_definition.required() {
                self.error(path, "required", format!("{label} is required"));
            }
            return Slot::Absent;
        };
        let code_list = match field_definition.field_type() {
            FieldType::Code { code_list, .. } => definition.code_list(code_list),
            _ => None,
        };
        match parse_value(
            field_definition,
            &label,
            raw,
            code_list,
            self.context.today(),
        ) {
            Ok(value) => {
                self.report.values.insert(path, value.canonical());
                Slot::Value(value)
            }
            // Blank after all (`;;`, an empty scan): treated as not given.
            Err(problem) if problem.code == "required" => {
                if field_definition.required() {
                    self.error(path, "required", problem.message);
                }
                Slot::Absent
            }
            Err(problem) => {
                // A malformed value was reported when the input was normalised.
                if *raw != RawValue::Malformed {
                    self.error(path, problem.code, problem.message);
                }
                Slot::Invalid
            }
        }
    }

    /// Register look-ups, expiry and manufacture dates of every device in the record.
    fn check_devices(&mut self) {
        let implant_date =
            self.definition
                .implant_date_index()
                .and_then(|index| match &self.top[index] {
                    Slot::Value(value) => value.date(),
                    _ => None,
                });
        let mut devices: Vec<(String, Value)> = Vec::new();
        for (index, slot) in self.top.iter().enumerate() {
            if let Slot::Value(value @ (Value::Udi(_) | Value::UdiDi(_))) = slot {
                devices.push((
                    self.definition.fields()[index].name().to_string(),
                    value.clone(),
                ));
            }
        }
        for (group_index, items) in self.groups.iter().enumerate() {
            let group = &self.definition.groups()[group_index];
            for item in items {
                for (index, slot) in item.slots.iter().enumerate() {
                    if let Slot::Value(value @ (Value::Udi(_) | Value::UdiDi(_))) = slot {
                        let path = format!(
                            "{}[{}].{}",
                            group.name(),
                            item.position,
                            group.fields()[index].name()
                        );
                        devices.push((path, value.clone()));
                    }
                }
            }
        }
        for (path, value) in devices {
            let Some(di) = value.udi_di() else { continue };
            match self.context.register_device_type(di) {
                None => self.warning(
                    path.clone(),
                    "not_in_register",
                    format!("UDI-DI {di} is not in the device register; the record will be flagged for follow-up"),
                ),
                Some(device_type) => {
                    if !self.definition.device_types().covers(&device_type) {
                        let name = self.definition.name().to_string();
                        self.warning(
                            path.clone(),
                            "device_type_not_covered",
                            format!(
                                "UDI-DI {di} is registered as a {}, which the {name} does not cover",
                                device_type.as_str().replace('_', " ")
                            ),
                        );
                    }
                    self.device_types.push(device_type);
                }
            }
            if let (Value::Udi(parsed), Some(implant_date)) = (&value, implant_date) {
                if let Some(expiry) = parsed.production.expiry
                    && expiry < implant_date
                {
                    self.warning(
                        path.clone(),
                        "expired_at_implant",
                        format!(
                            "The device expired on {expiry}, before the implant date {implant_date}"
                        ),
                    );
                }
                if let Some(made) = parsed.production.manufactured
                    && made > implant_date
                {
                    self.error(
                        path.clone(),
                        "manufactured_after_implant",
                        format!("The device was manufactured on {made}, after the implant date {implant_date}"),
                    );
                }
            }
        }
    }

    /// Warnings for numbers outside their plausible bounds.
    fn check_plausibility(&mut self) {
        let mut found = Vec::new();
        let definition = self.definition;
        let mut visit = |field: FieldRef, scope: Scope, slot: &Slot, checker: &Checker| {
            let Slot::Value(value) = slot else { return };
            let Some(number) = value.number() else { return };
            let (low, high) = match definition.field(field).field_type() {
                FieldType::Integer {
                    plausible_min,
                    plausible_max,
                    ..
                } => (
                    plausible_min.map(|v| v as f64),
                    plausible_max.map(|v| v as f64),
                ),
                FieldType::Decimal {
                    plausible_min,
                    plausible_max,
                    ..
                } => (*plausible_min, *plausible_max),
                _ => return,
            };
            let label = checker.label(field, scope);
            if low.is_some_and(|low| number < low) {
                found.push((
                    checker.path(field, scope),
                    format!("{label} of {number} is unusually low; please check it"),
                ));
            }
            if high.is_some_and(|high| number > high) {
                found.push((
                    checker.path(field, scope),
                    format!("{label} of {number} is unusually high; please check it"),
                ));
            }
        };
        for (index, slot) in self.top.iter().enumerate() {
            visit(FieldRef { group: None, index }, TOP, slot, self);
        }
        for (group, items) in self.groups.iter().enumerate() {
            for (item_index, item) in items.iter().enumerate() {
                for (index, slot) in item.slots.iter().enumerate() {
                    let scope = Scope {
                        item: Some(ItemRef {
                            group,
                            index: item_index,
                            position: item.position,
                        }),
                    };
                    visit(
                        FieldRef {
                            group: Some(group),
                            index,
                        },
                        scope,
                        slot,
                        self,
                    );
                }
            }
        }
        for (path, message) in found {
            self.warning(path, "implausible_value", message);
        }
    }

    fn check_rule(&mut self, rule: &Rule) {
        match rule.scope {
            None => self.check_rule_in(rule, TOP),
            Some(group) => {
                let positions: Vec<usize> = self.groups[group]
                    .iter()
                    .map(|item| item.position)
                    .collect();
                for (index, position) in positions.into_iter().enumerate() {
                    let item = ItemRef {
                        group,
                        index,
                        position,
                    };
                    self.check_rule_in(rule, Scope { item: Some(item) });
                }
            }
        }
    }

    fn check_rule_in(&mut self, rule: &Rule, scope: Scope) {
        let custom = rule.message.clone();
        let message = |generated: String| custom.clone().unwrap_or(generated);
        match &rule.kind {
            RuleKind::RequiredIf { target, when } => {
                if self.truth(when, scope) != Truth::Yes {
                    return;
                }
                let condition = self.describe(when);
                match *target {
                    Target::Field(field) => {
                        if *self.slot(field, scope) == Slot::Absent {
                            let label = self.label(field, scope);
                            self.error(
                                self.path(field, scope),
                                "conditional_required",
                                message(format!("{label} is required when {condition}")),
                            );
                        }
                    }
                    Target::Group(group) => {
                        if self.groups[group].is_empty() {
                            let group = &self.definition.groups()[group];
                            self.error(
                                group.name(),
                                "conditional_required",
                                message(format!(
                                    "At least one {} is required when {condition}",
                                    in_sentence(group.label())
                                )),
                            );
                        }
                    }
                }
            }
            RuleKind::ForbiddenUnless { target, when } => {
                if self.truth(when, scope) != Truth::No {
                    return;
                }
                let condition = self.describe(when);
                match *target {
                    Target::Field(field) => {
                        if *self.slot(field, scope) != Slot::Absent {
                            let label = self.label(field, scope);
                            self.error(
                                self.path(field, scope),
                                "forbidden",
                                message(format!("{label} must be left empty unless {condition}")),
                            );
                        }
                    }
                    Target::Group(group) => {
                        if !self.groups[group].is_empty() {
                            let group = &self.definition.groups()[group];
                            self.error(
                                group.name(),
                                "forbidden",
                                message(format!(
                                    "No {} may be given unless {condition}",
                                    in_sentence(group.label())
                                )),
                            );
                        }
                    }
                }
            }
            RuleKind::AtLeastOneOf { fields } => {
                if fields.iter().all(|&f| *self.slot(f, scope) == Slot::Absent) {
                    let labels: Vec<String> =
                        fields.iter().map(|&f| self.label(f, scope)).collect();
                    self.error(
                        self.path(fields[0], scope),
                        "required_one_of",
                        message(format!("Give at least one of: {}", labels.join(", "))),
                    );
                }
            }
            RuleKind::DateOrder { earlier, later } => {
                let (Some(first), Some(second)) =
                    (self.date(*earlier, scope), self.date(*later, scope))
                else {
                    return;
                };
                if second < first {
                    let later_label = self.label(*later, scope);
                    let earlier_label = in_sentence(&self.label(*earlier, scope));
                    self.error(
                        self.path(*later, scope),
                        "date_order",
                        message(format!(
                            "{later_label} {second} must not be before the {earlier_label} {first}"
                        )),
                    );
                }
            }
            RuleKind::Compare { left, op, right } => {
                let Some(left_value) = self.number(*left, scope) else {
                    return;
                };
                let (right_value, right_words) = match right {
                    Operand::Number(number) => (*number, number.to_string()),
                    Operand::Field(field) => {
                        let Some(value) = self.number(*field, scope) else {
                            return;
                        };
                        (
                            value,
                            format!("the {} ({value})", in_sentence(&self.label(*field, scope))),
                        )
                    }
                };
                if !op.holds(left_value, right_value) {
                    let label = self.label(*left, scope);
                    self.error(
                        self.path(*left, scope),
                        "comparison",
                        message(format!(
                            "{label} must be {} {right_words}; it is {left_value}",
                            op.words()
                        )),
                    );
                }
            }
            RuleKind::LateralityRequired {
                field,
                when,
                device_types,
            } => {
                let reason = match when {
                    Some(when) if self.truth(when, scope) == Truth::Yes => {
                        Some(format!("when {}", self.describe(when)))
                    }
                    _ => device_types
                        .iter()
                        .find(|t| self.device_types.contains(t))
                        .map(|t| format!("for a {}", t.as_str().replace('_', " "))),
                };
                let Some(reason) = reason else { return };
                let label = self.label(*field, scope);
                match self.slot(*field, scope) {
                    Slot::Absent => self.error(
                        self.path(*field, scope),
                        "laterality_required",
                        message(format!(
                            "{label} (left, right or bilateral) is required {reason}"
                        )),
                    ),
                    Slot::Value(Value::Laterality(Laterality::NotApplicable)) => self.error(
                        self.path(*field, scope),
                        "laterality_required",
                        message(format!("{label} must be left, right or bilateral {reason}")),
                    ),
                    _ => {}
                }
            }
            RuleKind::Age {
                date_of_birth,
                on,
                min_years,
                max_years,
            } => {
                let (Some(born), Some(on_date)) =
                    (self.date(*date_of_birth, scope), self.date(*on, scope))
                else {
                    return;
                };
                let on_label = in_sentence(&self.label(*on, scope));
                let problem = match on_date.years_since(born) {
                    None => Some(format!(
                        "The {on_label} {on_date} is before the date of birth {born}"
                    )),
                    Some(age) if age > *max_years || age < *min_years => Some(format!(
                        "An age of {age} years on the {on_label} is implausible; please check the date of birth"
                    )),
                    Some(_) => None,
                };
                if let Some(problem) = problem {
                    self.warning(
                        self.path(*date_of_birth, scope),
                        "implausible_age",
                        message(problem),
                    );
                }
            }
        }
    }

    fn slot(&self, field: FieldRef, scope: Scope) -> &Slot {
        const ABSENT: &Slot = &Slot::Absent;
        match (field.group, scope.item) {
            (None, _) => self.top.get(field.index).unwrap_or(ABSENT),
            (Some(group), Some(item)) if group == item.group => self
                .groups
                .get(group)
                .and_then(|items| items.get(item.index))
                .and_then(|item| item.slots.get(field.index))
                .unwrap_or(ABSENT),
            _ => ABSENT,
        }
    }

    fn date(&self, field: FieldRef, scope: Scope) -> Option<NaiveDate> {
        match self.slot(field, scope) {
            Slot::Value(value) => value.date(),
            _ => None,
        }
    }

    fn number(&self, field: FieldRef, scope: Scope) -> Option<f64> {
        match self.slot(field, scope) {
            Slot::Value(value) => value.number(),
            _ => None,
        }
    }

    /// The field's path in the record: `breast.side` or `devices[1].udi`.
    fn path(&self, field: FieldRef, scope: Scope) -> String {
        let definition = self.field_definition(field);
        match (field.group, scope.item) {
            (Some(group), Some(item)) => {
                format!(
                    "{}[{}].{}",
                    self.definition.groups()[group].name(),
                    item.position,
                    definition.name()
                )
            }
            _ => definition.name().to_string(),
        }
    }

    /// The field's label to start a message: `Explant reason` or `UDI of device 2`.
    fn label(&self, field: FieldRef, scope: Scope) -> String {
        self.field_label(field, scope).to_string()
    }

    /// The label of `field` in `scope`, formatted only if a message uses it: every field of
    /// every record is read, and few have a problem.
    fn field_label(&self, field: FieldRef, scope: Scope) -> FieldLabel<'a> {
        let label = self.field_definition(field).label();
        match (field.group, scope.item) {
            (Some(group), Some(item)) => FieldLabel {
                label,
                item: Some((self.definition.groups()[group].label(), item.position + 1)),
            },
            _ => FieldLabel { label, item: None },
        }
    }

    fn field_definition(&self, field: FieldRef) -> &'a crate::dataset::definition::FieldDefinition {
        self.definition.field(field)
    }

    fn truth(&self, condition: &Condition, scope: Scope) -> Truth {
        match condition.target {
            Target::Group(group) => {
                let present = !self.groups[group].is_empty();
                match condition.test {
                    Test::Present(wanted) => Truth::of(present == wanted),
                    _ => Truth::Unknown,
                }
            }
            Target::Field(field) => match (self.slot(field, scope), &condition.test) {
                (Slot::Invalid, _) => Truth::Unknown,
                (Slot::Absent, Test::Present(wanted)) => Truth::of(!wanted),
                (Slot::Absent, Test::Equals(_) | Test::In(_)) => Truth::No,
                (Slot::Absent, Test::NotIn(_)) => Truth::Unknown,
                (Slot::Value(_), Test::Present(wanted)) => Truth::of(*wanted),
                (Slot::Value(value), Test::Equals(wanted)) => {
                    Truth::of(value.matches_any(std::slice::from_ref(wanted)))
                }
                (Slot::Value(value), Test::In(wanted)) => Truth::of(value.matches_any(wanted)),
                (Slot::Value(value), Test::NotIn(wanted)) => Truth::of(!value.matches_any(wanted)),
            },
        }
    }

    /// A condition in words: `the action is explant`.
    fn describe(&self, condition: &Condition) -> String {
        let (label, field_type) = match condition.target {
            Target::Group(group) => {
                let label = in_sentence(self.definition.groups()[group].label());
                return match condition.test {
                    Test::Present(false) => format!("no {label} is given"),
                    _ => format!("a {label} is given"),
                };
            }
            Target::Field(field) => {
                let definition = self.field_definition(field);
                (in_sentence(definition.label()), definition.field_type())
            }
        };
        let words = |values: &[String]| -> String {
            let words: Vec<String> = values
                .iter()
                .map(|v| self.value_words(field_type, v))
                .collect();
            match words.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            }
        };
        match &condition.test {
            Test::Present(true) => format!("the {label} is given"),
            Test::Present(false) => format!("the {label} is not given"),
            Test::Equals(value) => format!("the {label} is {}", words(std::slice::from_ref(value))),
            Test::In(values) => format!("the {label} is {}", words(values)),
            Test::NotIn(values) => format!("the {label} is not {}", words(values)),
        }
    }

    /// A canonical value in words: a code's label, `yes`/`no`, `not applicable`.
    fn value_words(&self, field_type: &FieldType, value: &str) -> String {
        match field_type {
            FieldType::Code { code_list, .. } => self
                .definition
                .code_list(code_list)
                .and_then(|list| list.find(value))
                .map_or_else(|| value.to_string(), |code| in_sentence(&code.label)),
            FieldType::Boolean => if value == "true" { "yes" } else { "no" }.to_string(),
            _ => value.replace('_', " "),
        }
    }
}

/// Removes repeated (path, code, message) entries, keeping the first.
fn dedup(problems: &mut Vec<FieldError>) {
    let mut seen = std::collections::BTreeSet::new();
    problems.retain(|p| seen.insert((p.field.clone(), p.code, p.message.clone())));
}
