//! The dataset definition model and its parser from TOML.
//!
//! Parsing is two steps, as for configuration: serde reads the file into raw structs that
//! accept any string, then `Builder` checks every name, type, bound, code list and rule and
//! collects all problems before giving up, so that one run over a broken file lists
//! everything wrong with it. A `DatasetDefinition` that exists is consistent: every rule
//! names defined fields of the right types, and every code field's list exists.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Deserialize;

use crate::identifiers::{Laterality, Opcs4Code, RegistryCode, Sex, Slug};

/// A dataset version, `MAJOR.MINOR` (e.g. `1.1`), ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetVersion {
    major: u32,
    minor: u32,
}

impl DatasetVersion {
    /// Accepts `1.0`, `2.13`; rejects leading zeros (`1.01`), missing parts and signs, so that
    /// each version has exactly one spelling (it is also a file name).
    pub fn parse(input: &str) -> Result<DatasetVersion, String> {
        let problem = || format!("version '{input}' must be MAJOR.MINOR, e.g. 1.0");
        let (major, minor) = input.split_once('.').ok_or_else(problem)?;
        let number = |part: &str| -> Option<u32> {
            let canonical = !part.is_empty()
                && part.len() <= 4
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'));
            canonical.then(|| part.parse().ok()).flatten()
        };
        match (number(major), number(minor)) {
            (Some(major), Some(minor)) => Ok(DatasetVersion { major, minor }),
            _ => Err(problem()),
        }
    }

    pub fn major(self) -> u32 {
        self.major
    }

    pub fn minor(self) -> u32 {
        self.minor
    }
}

impl std::fmt::Display for DatasetVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A definition file that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// The file as named by the caller, e.g. `registries/bcir/1.1.toml`.
    pub file: String,
    pub problems: Vec<DefinitionProblem>,
}

/// One problem in a definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionProblem {
    /// The field, group, rule or code list at fault, e.g. `field breast.plane` or `rule 3`.
    pub location: Option<String>,
    pub message: String,
}

impl std::fmt::Display for DefinitionProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{location}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.file)?;
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DefinitionError {}

impl DefinitionError {
    pub fn new(file: &str, location: Option<String>, message: impl Into<String>) -> Self {
        DefinitionError {
            file: file.to_string(),
            problems: vec![DefinitionProblem {
                location,
                message: message.into(),
            }],
        }
    }
}

/// The device types a registry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceTypes {
    /// Written `device_types = ["*"]`: any device type (the core dataset).
    Any,
    Listed(Vec<Slug>),
}

impl DeviceTypes {
    pub fn covers(&self, device_type: &Slug) -> bool {
        match self {
            DeviceTypes::Any => true,
            DeviceTypes::Listed(types) => types.contains(device_type),
        }
    }
}

/// One value of a code list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub code: String,
    pub label: String,
}

/// A named list of allowed values with labels, e.g. the BCIR explant reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeList {
    codes: Vec<Code>,
}

impl CodeList {
    pub fn codes(&self) -> &[Code] {
        &self.codes
    }

    /// The canonical code for what someone typed: the code itself, then the code ignoring
    /// case, then a label ignoring case (clerks type labels).
    pub fn find(&self, input: &str) -> Option<&Code> {
        let input = input.trim();
        self.codes
            .iter()
            .find(|c| c.code == input)
            .or_else(|| {
                self.codes
                    .iter()
                    .find(|c| c.code.eq_ignore_ascii_case(input))
            })
            .or_else(|| {
                self.codes
                    .iter()
                    .find(|c| c.label.to_lowercase() == input.to_lowercase())
            })
    }
}

/// What a field holds and the bounds it must keep.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    /// A value from a code list; with `multiple`, a `;`-separated list or a JSON array.
    Code {
        code_list: String,
        multiple: bool,
    },
    /// A whole number in `min..=max`; outside `plausible_min..=plausible_max` is a warning.
    Integer {
        min: i64,
        max: i64,
        plausible_min: Option<i64>,
        plausible_max: Option<i64>,
    },
    /// A decimal number in `min..=max`; outside the plausible bounds is a warning.
    Decimal {
        min: f64,
        max: f64,
        plausible_min: Option<f64>,
        plausible_max: Option<f64>,
    },
    /// A calendar date, `YYYY-MM-DD` or `DD/MM/YYYY`; not after today unless `allow_future`.
    Date {
        allow_future: bool,
        earliest: Option<NaiveDate>,
    },
    /// Printable text of at most `max_length` characters.
    Text {
        max_length: usize,
    },
    Boolean,
    /// A raw barcode scan read by `udi::parse_scan_at`.
    UdiScan,
    /// A bare UDI-DI typed from a label, read by `UdiDi::parse`.
    UdiDi,
    NhsNumber,
    OdsCode,
    GmcNumber,
    /// An OPCS-4 code in the classification version the dataset is coded in.
    Opcs4Code {
        version: String,
    },
    SnomedCtId,
    Laterality,
    Sex,
    Postcode,
}

impl FieldType {
    /// The word used for the type in definition files.
    pub fn keyword(&self) -> &'static str {
        match self {
            FieldType::Code { .. } => "code",
            FieldType::Integer { .. } => "integer",
            FieldType::Decimal { .. } => "decimal",
            FieldType::Date { .. } => "date",
            FieldType::Text { .. } => "text",
            FieldType::Boolean => "boolean",
            FieldType::UdiScan => "udi_scan",
            FieldType::UdiDi => "udi_di",
            FieldType::NhsNumber => "nhs_number",
            FieldType::OdsCode => "ods_code",
            FieldType::GmcNumber => "gmc_number",
            FieldType::Opcs4Code { .. } => "opcs4_code",
            FieldType::SnomedCtId => "snomed_ct_id",
            FieldType::Laterality => "laterality",
            FieldType::Sex => "sex",
            FieldType::Postcode => "postcode",
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self, FieldType::Integer { .. } | FieldType::Decimal { .. })
    }
}

/// One field of a dataset, at the top level (`breast.plane`) or inside a group (`udi`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDefinition {
    name: String,
    label: String,
    field_type: FieldType,
    required: bool,
    description: Option<String>,
}

impl FieldDefinition {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name people see in messages, e.g. `Explant reason`.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn field_type(&self) -> &FieldType {
        &self.field_type
    }

    pub fn required(&self) -> bool {
        self.required
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

/// A repeated group of fields, e.g. the devices of one procedure.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDefinition {
    name: String,
    label: String,
    csv_prefix: String,
    min_items: usize,
    max_items: usize,
    fields: Vec<FieldDefinition>,
}

impl GroupDefinition {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The singular name of one item, e.g. `Device`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// CSV columns of item `n` (1-based) are `<csv_prefix><n>.<field>`, e.g. `device2.udi`.
    pub fn csv_prefix(&self) -> &str {
        &self.csv_prefix
    }

    pub fn min_items(&self) -> usize {
        self.min_items
    }

    pub fn max_items(&self) -> usize {
        self.max_items
    }

    pub fn fields(&self) -> &[FieldDefinition] {
        &self.fields
    }
}

/// A field of the definition: top level, or field `index` of group `group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldRef {
    pub group: Option<usize>,
    pub index: usize,
}

/// What a rule or condition names: a field, or a whole group (present when it has an item).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Field(FieldRef),
    Group(usize),
}

/// A test of one field's value; the values are canonical (as the field's parser returns).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Equals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Present(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub target: Target,
    pub test: Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
}

impl CompareOp {
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            CompareOp::Less => left < right,
            CompareOp::LessOrEqual => left <= right,
            CompareOp::Greater => left > right,
            CompareOp::GreaterOrEqual => left >= right,
            CompareOp::Equal => left == right,
            CompareOp::NotEqual => left != right,
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            CompareOp::Less => "less than",
            CompareOp::LessOrEqual => "at most",
            CompareOp::Greater => "more than",
            CompareOp::GreaterOrEqual => "at least",
            CompareOp::Equal => "equal to",
            CompareOp::NotEqual => "different from",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Field(FieldRef),
    Number(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RuleKind {
    /// The target must be given when the condition holds.
    RequiredIf { target: Target, when: Condition },
    /// The target must be empty unless the condition holds.
    ForbiddenUnless { target: Target, when: Condition },
    /// At least one of the fields must be given.
    AtLeastOneOf { fields: Vec<FieldRef> },
    /// `later` must not be before `earlier`.
    DateOrder { earlier: FieldRef, later: FieldRef },
    /// A numeric comparison between two fields or a field and a number.
    Compare {
        left: FieldRef,
        op: CompareOp,
        right: Operand,
    },
    /// A laterality field must be left, right or bilateral when the condition holds or when a
    /// device of one of the device types is in the record.
    LateralityRequired {
        field: FieldRef,
        when: Option<Condition>,
        device_types: Vec<Slug>,
    },
    /// A warning when the age between two dates is outside `min_years..=max_years`.
    Age {
        date_of_birth: FieldRef,
        on: FieldRef,
        min_years: u32,
        max_years: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub kind: RuleKind,
    /// The group whose items the rule is checked for, one by one; `None` checks it once.
    pub scope: Option<usize>,
    /// A message written in the definition, replacing the generated one.
    pub message: Option<String>,
}

/// One version of one registry's dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetDefinition {
    registry: RegistryCode,
    name: String,
    version: DatasetVersion,
    description: Option<String>,
    device_types: DeviceTypes,
    implant_date: Option<usize>,
    fields: Vec<FieldDefinition>,
    groups: Vec<GroupDefinition>,
    pub(crate) rules: Vec<Rule>,
    code_lists: BTreeMap<String, CodeList>,
}

impl DatasetDefinition {
    /// Reads a definition from TOML. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<DatasetDefinition, DefinitionError> {
        let raw: RawDefinition = toml::from_str(text).map_err(|e| {
            DefinitionError::new(file, None, e.to_string().trim_end().replace('\n', " "))
        })?;
        let mut builder = Builder::default();
        let definition = builder.build(raw);
        match definition {
            Some(definition) if builder.problems.is_empty() => Ok(definition),
            _ => Err(DefinitionError {
                file: file.to_string(),
                problems: builder.problems,
            }),
        }
    }

    pub fn registry(&self) -> &RegistryCode {
        &self.registry
    }

    /// The registry's name, e.g. `Breast and Cosmetic Implant Registry`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> DatasetVersion {
        self.version
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub fn device_types(&self) -> &DeviceTypes {
        &self.device_types
    }

    /// The top-level date field that devices' expiry and manufacture dates are checked against.
    pub fn implant_date_field(&self) -> Option<&FieldDefinition> {
        self.implant_date.map(|index| &self.fields[index])
    }

    pub(crate) fn implant_date_index(&self) -> Option<usize> {
        self.implant_date
    }

    /// Top-level fields, in file order.
    pub fn fields(&self) -> &[FieldDefinition] {
        &self.fields
    }

    pub fn groups(&self) -> &[GroupDefinition] {
        &self.groups
    }

    pub fn code_list(&self, name: &str) -> Option<&CodeList> {
        self.code_lists.get(name)
    }

    pub fn code_lists(&self) -> &BTreeMap<String, CodeList> {
        &self.code_lists
    }

    /// The CSV header for rows with up to `items_per_group` items in each group: top-level
    /// fields by name, then `<csv_prefix><n>.<field>` for each item.
    pub fn csv_header(&self, items_per_group: usize) -> Vec<String> {
        let mut header: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
        for group in &self.groups {
            for n in 1..=items_per_group.min(group.max_items) {
                for field in &group.fields {
                    header.push(format!("{}{n}.{}", group.csv_prefix, field.name));
                }
            }
        }
        header
    }

    pub(crate) fn field(&self, field: FieldRef) -> &FieldDefinition {
        match field.group {
            Some(group) => &self.groups[group].fields[field.index],
            None => &self.fields[field.index],
        }
    }

    pub(crate) fn top_field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub(crate) fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    /// True when `prefix.` starts some top-level field's name, so `prefix` is a section.
    pub(crate) fn is_section(&self, prefix: &str) -> bool {
        self.fields.iter().any(|f| {
            f.name
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
        })
    }
}

/// The raw file, before any check but TOML syntax and key names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    registry: String,
    name: String,
    version: String,
    description: Option<String>,
    device_types: Vec<String>,
    implant_date: Option<String>,
    #[serde(default)]
    fields: Vec<RawField>,
    #[serde(default)]
    groups: Vec<RawGroup>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    code_lists: BTreeMap<String, Vec<RawCode>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    label: Option<String>,
    #[serde(rename = "type")]
    field_type: String,
    #[serde(default)]
    required: bool,
    description: Option<String>,
    code_list: Option<String>,
    multiple: Option<bool>,
    min: Option<RawNumber>,
    max: Option<RawNumber>,
    plausible_min: Option<RawNumber>,
    plausible_max: Option<RawNumber>,
    max_length: Option<i64>,
    allow_future: Option<bool>,
    earliest: Option<String>,
    opcs4_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: String,
    label: Option<String>,
    csv_prefix: String,
    min: Option<i64>,
    max: i64,
    #[serde(default)]
    fields: Vec<RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    kind: String,
    field: Option<String>,
    fields: Option<Vec<String>>,
    when: Option<RawCondition>,
    earlier: Option<String>,
    later: Option<String>,
    left: Option<String>,
    op: Option<String>,
    right: Option<String>,
    value: Option<RawNumber>,
    device_types: Option<Vec<String>>,
    date_of_birth: Option<String>,
    on: Option<String>,
    min_years: Option<i64>,
    max_years: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    field: String,
    equals: Option<RawScalar>,
    #[serde(rename = "in")]
    in_list: Option<Vec<RawScalar>>,
    not_in: Option<Vec<RawScalar>>,
    present: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCode {
    code: RawScalar,
    label: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum RawNumber {
    Integer(i64),
    Float(f64),
}

impl RawNumber {
    fn as_f64(self) -> f64 {
        match self {
            RawNumber::Integer(i) => i as f64,
            RawNumber::Float(f) => f,
        }
    }
}

/// A TOML scalar written where a value is expected (`equals = true`, `code = 31`).
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawScalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
}

impl RawScalar {
    fn text(&self) -> String {
        match self {
            RawScalar::Text(s) => s.clone(),
            RawScalar::Integer(i) => i.to_string(),
            RawScalar::Float(f) => f.to_string(),
            RawScalar::Boolean(b) => b.to_string(),
        }
    }
}

/// Longest text field a definition may declare, so one field cannot hold a whole document.
const MAX_TEXT_LENGTH: i64 = 10_000;
/// Most items a group may declare; `record::MAX_DEVICES_PER_PROCEDURE` for devices.
const MAX_GROUP_ITEMS: i64 = 50;

/// Checks a raw definition, collecting every problem.
#[derive(Default)]
struct Builder {
    problems: Vec<DefinitionProblem>,
}

impl Builder {
    fn problem(&mut self, location: Option<String>, message: impl Into<String>) {
        self.problems.push(DefinitionProblem {
            location,
            message: message.into(),
        });
    }

    fn build(&mut self, raw: RawDefinition) -> Option<DatasetDefinition> {
        let registry = RegistryCode::parse(&raw.registry)
            .map_err(|e| self.problem(Some("registry".into()), e.problem))
            .ok();
        let version = DatasetVersion::parse(&raw.version)
            .map_err(|e| self.problem(Some("version".into()), e))
            .ok();
        let name = raw.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 200 {
            self.problem(Some("name".into()), "must be 1 to 200 characters");
        }
        let device_types = self.device_types(&raw.device_types);
        let code_lists = self.code_lists(&raw.code_lists);

        let mut fields = Vec::new();
        let mut names = BTreeSet::new();
        for raw_field in &raw.fields {
            let location = format!("field {}", raw_field.name);
            if !valid_top_level_name(&raw_field.name) {
                self.problem(
                    Some(location.clone()),
                    "name must be 1 to 4 dot-separated parts of lower-case letters, digits and underscores, each starting with a letter",
                );
            }
            if !names.insert(raw_field.name.clone()) {
                self.problem(Some(location.clone()), "is defined twice");
            }
            if let Some(field) = self.field(raw_field, &location, &code_lists) {
                fields.push(field);
            }
        }
        for name in &names {
            let is_prefix = names.iter().any(|other| {
                other
                    .strip_prefix(name.as_str())
                    .is_some_and(|r| r.starts_with('.'))
            });
            if is_prefix {
                self.problem(
                    Some(format!("field {name}")),
                    "is also the section of other fields; a name cannot be both",
                );
            }
        }

        let groups = self.groups(&raw.groups, &names, &code_lists);
        let mut used_lists: BTreeSet<&str> = BTreeSet::new();
        for field in fields
            .iter()
            .chain(groups.iter().flat_map(|g| g.fields.iter()))
        {
            if let FieldType::Code { code_list, .. } = &field.field_type {
                used_lists.insert(code_list);
            }
        }
        for list in code_lists.keys() {
            if !used_lists.contains(list.as_str()) {
                self.problem(
                    Some(format!("code list {list}")),
                    "is not used by any field",
                );
            }
        }

        let mut definition = DatasetDefinition {
            registry: registry?,
            name,
            version: version?,
            description: raw.description.map(|d| d.trim().to_string()),
            device_types: device_types?,
            implant_date: None,
            fields,
            groups,
            rules: Vec::new(),
            code_lists,
        };
        if let Some(implant_date) = &raw.implant_date {
            let index = definition.top_field_index(implant_date);
            match index.map(|i| &definition.fields[i].field_type) {
                Some(FieldType::Date { .. }) => definition.implant_date = index,
                Some(other) => self.problem(
                    Some("implant_date".into()),
                    format!(
                        "names field {implant_date}, a {} field; it must be a date",
                        other.keyword()
                    ),
                ),
                None => self.problem(
                    Some("implant_date".into()),
                    format!("names {implant_date}, which is not a top-level field"),
                ),
            }
        }
        for (i, raw_rule) in raw.rules.iter().enumerate() {
            let location = format!("rule {} ({})", i + 1, raw_rule.kind);
            if let Some(rule) = self.rule(raw_rule, &location, &definition) {
                definition.rules.push(rule);
            }
        }
        Some(definition)
    }

    fn device_types(&mut self, raw: &[String]) -> Option<DeviceTypes> {
        if raw == ["*"] {
            return Some(DeviceTypes::Any);
        }
        if raw.is_empty() {
            self.problem(
                Some("device_types".into()),
                "must list at least one device type, or be [\"*\"] for any",
            );
            return None;
        }
        let mut types = Vec::new();
        for name in raw {
            match Slug::parse_field(name, "device_type") {
                Ok(slug) if types.contains(&slug) => {
                    self.problem(Some("device_types".into()), format!("lists {name} twice"))
                }
                Ok(slug) => types.push(slug),
                Err(e) => self.problem(
                    Some("device_types".into()),
                    format!("'{name}': {}", e.problem),
                ),
            }
        }
        Some(DeviceTypes::Listed(types))
    }

    fn code_lists(&mut self, raw: &BTreeMap<String, Vec<RawCode>>) -> BTreeMap<String, CodeList> {
        let mut lists = BTreeMap::new();
        for (name, raw_codes) in raw {
            let location = Some(format!("code list {name}"));
            if Slug::parse(name).is_err() {
                self.problem(
                    location.clone(),
                    "name must be 2 to 40 lower-case letters, digits or underscores",
                );
            }
            if raw_codes.is_empty() {
                self.problem(location.clone(), "has no codes");
            }
            let mut codes: Vec<Code> = Vec::new();
            for raw_code in raw_codes {
                let code = raw_code.code.text().trim().to_string();
                let label = raw_code.label.trim().to_string();
                let printable = |s: &str| !s.is_empty() && !s.chars().any(char::is_control);
                if !printable(&code) || code.chars().count() > 40 || code.contains(';') {
                    self.problem(
                        location.clone(),
                        format!("code '{code}' must be 1 to 40 printable characters without ';'"),
                    );
                }
                if !printable(&label) || label.chars().count() > 200 {
                    self.problem(
                        location.clone(),
                        format!("code '{code}' needs a label of 1 to 200 printable characters"),
                    );
                }
                let clash = codes.iter().find(|c| {
                    c.code.eq_ignore_ascii_case(&code)
                        || c.label.to_lowercase() == label.to_lowercase()
                });
                if let Some(clash) = clash {
                    self.problem(
                        location.clone(),
                        format!(
                            "code '{code}' repeats the code or label of '{}' (codes and labels are matched ignoring case)",
                            clash.code
                        ),
                    );
                }
                codes.push(Code { code, label });
            }
            lists.insert(name.clone(), CodeList { codes });
        }
        lists
    }

    fn groups(
        &mut self,
        raw_groups: &[RawGroup],
        top_names: &BTreeSet<String>,
        code_lists: &BTreeMap<String, CodeList>,
    ) -> Vec<GroupDefinition> {
        let mut groups: Vec<GroupDefinition> = Vec::new();
        for raw in raw_groups {
            let location = format!("group {}", raw.name);
            if Slug::parse(&raw.name).is_err() {
                self.problem(
                    Some(location.clone()),
                    "name must be 2 to 40 lower-case letters, digits or underscores",
                );
            }
            if groups.iter().any(|g| g.name == raw.name) {
                self.problem(Some(location.clone()), "is defined twice");
            }
            let clashes_with_field = top_names.iter().any(|name| {
                name == &raw.name
                    || name.split('.').next() == Some(raw.name.as_str())
                    || name
                        .split('.')
                        .next()
                        .and_then(|first| first.strip_prefix(raw.csv_prefix.as_str()))
                        .is_some_and(|rest| {
                            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                        })
            });
            if clashes_with_field {
                self.problem(
                    Some(location.clone()),
                    "name or csv_prefix clashes with a top-level field name",
                );
            }
            if Slug::parse(&raw.csv_prefix).is_err()
                || raw.csv_prefix.ends_with(|c: char| c.is_ascii_digit())
            {
                self.problem(
                    Some(location.clone()),
                    "csv_prefix must be lower-case letters, digits or underscores, not ending in a digit",
                );
            }
            if groups.iter().any(|g| g.csv_prefix == raw.csv_prefix) {
                self.problem(
                    Some(location.clone()),
                    "csv_prefix is used by another group",
                );
            }
            let min = raw.min.unwrap_or(0);
            if !(1..=MAX_GROUP_ITEMS).contains(&raw.max) || !(0..=raw.max).contains(&min) {
                self.problem(
                    Some(location.clone()),
                    format!("needs 0 <= min <= max and 1 <= max <= {MAX_GROUP_ITEMS}"),
                );
            }
            if raw.fields.is_empty() {
                self.problem(Some(location.clone()), "has no fields");
            }
            let mut fields: Vec<FieldDefinition> = Vec::new();
            for raw_field in &raw.fields {
                let field_location = format!("field {}.{}", raw.name, raw_field.name);
                if Slug::parse(&raw_field.name).is_err() {
                    self.problem(
                        Some(field_location.clone()),
                        "name in a group must be 2 to 40 lower-case letters, digits or underscores",
                    );
                }
                if fields.iter().any(|f| f.name == raw_field.name) {
                    self.problem(Some(field_location.clone()), "is defined twice");
                }
                if let Some(field) = self.field(raw_field, &field_location, code_lists) {
                    fields.push(field);
                }
            }
            groups.push(GroupDefinition {
                name: raw.name.clone(),
                label: raw
                    .label
                    .clone()
                    .unwrap_or_else(|| label_from_name(&raw.name)),
                csv_prefix: raw.csv_prefix.clone(),
                min_items: usize::try_from(min).unwrap_or(0),
                max_items: usize::try_from(raw.max.clamp(1, MAX_GROUP_ITEMS)).unwrap_or(1),
                fields,
            });
        }
        groups
    }

    fn field(
        &mut self,
        raw: &RawField,
        location: &str,
        code_lists: &BTreeMap<String, CodeList>,
    ) -> Option<FieldDefinition> {
        let location = Some(location.to_string());
        let label = match &raw.label {
            Some(label) => label.trim().to_string(),
            None => label_from_name(&raw.name),
        };
        if label.is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control) {
            self.problem(
                location.clone(),
                "label must be 1 to 100 printable characters",
            );
        }
        // Which optional keys each type takes; any other given key is a mistake.
        let given = [
            ("code_list", raw.code_list.is_some()),
            ("multiple", raw.multiple.is_some()),
            ("min", raw.min.is_some()),
            ("max", raw.max.is_some()),
            ("plausible_min", raw.plausible_min.is_some()),
            ("plausible_max", raw.plausible_max.is_some()),
            ("max_length", raw.max_length.is_some()),
            ("allow_future", raw.allow_future.is_some()),
            ("earliest", raw.earliest.is_some()),
            ("opcs4_version", raw.opcs4_version.is_some()),
        ];
        let allowed: &[&str] = match raw.field_type.as_str() {
            "code" => &["code_list", "multiple"],
            "integer" | "decimal" => &["min", "max", "plausible_min", "plausible_max"],
            "date" => &["allow_future", "earliest"],
            "text" => &["max_length"],
            "opcs4_code" => &["opcs4_version"],
            "boolean" | "udi_scan" | "udi_di" | "nhs_number" | "ods_code" | "gmc_number"
            | "snomed_ct_id" | "laterality" | "sex" | "postcode" => &[],
            other => {
                self.problem(
                    location,
                    format!(
                        "unknown field type '{other}'; expected one of code, integer, decimal, date, text, boolean, udi_scan, udi_di, nhs_number, ods_code, gmc_number, opcs4_code, snomed_ct_id, laterality, sex, postcode"
                    ),
                );
                return None;
            }
        };
        for (key, present) in given {
            if present && !allowed.contains(&key) {
                self.problem(
                    location.clone(),
                    format!("'{key}' does not apply to a {} field", raw.field_type),
                );
            }
        }
        let field_type = match raw.field_type.as_str() {
            "code" => {
                let Some(code_list) = raw.code_list.clone() else {
                    self.problem(location, "a code field needs a code_list");
                    return None;
                };
                if !code_lists.contains_key(&code_list) {
                    self.problem(
                        location.clone(),
                        format!("code list '{code_list}' is not defined"),
                    );
                }
                FieldType::Code {
                    code_list,
                    multiple: raw.multiple.unwrap_or(false),
                }
            }
            "integer" => {
                let whole = |n: Option<RawNumber>| match n {
                    Some(RawNumber::Integer(i)) => Ok(Some(i)),
                    Some(RawNumber::Float(_)) => Err(()),
                    None => Ok(None),
                };
                match (
                    whole(raw.min),
                    whole(raw.max),
                    whole(raw.plausible_min),
                    whole(raw.plausible_max),
                ) {
                    (Ok(Some(min)), Ok(Some(max)), Ok(plausible_min), Ok(plausible_max)) => {
                        self.check_bounds(
                            &location,
                            min as f64,
                            max as f64,
                            plausible_min.map(|p| p as f64),
                            plausible_max.map(|p| p as f64),
                        );
                        FieldType::Integer {
                            min,
                            max,
                            plausible_min,
                            plausible_max,
                        }
                    }
                    _ => {
                        self.problem(
                            location,
                            "an integer field needs whole-number min and max (plausible bounds are whole numbers too)",
                        );
                        return None;
                    }
                }
            }
            "decimal" => {
                let (Some(min), Some(max)) = (raw.min, raw.max) else {
                    self.problem(location, "a decimal field needs min and max");
                    return None;
                };
                let (min, max) = (min.as_f64(), max.as_f64());
                let plausible_min = raw.plausible_min.map(RawNumber::as_f64);
                let plausible_max = raw.plausible_max.map(RawNumber::as_f64);
                self.check_bounds(&location, min, max, plausible_min, plausible_max);
                FieldType::Decimal {
                    min,
                    max,
                    plausible_min,
                    plausible_max,
                }
            }
            "date" => {
                let earliest = match &raw.earliest {
                    Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                        Ok(date) => Some(date),
                        Err(_) => {
                            self.problem(
                                location.clone(),
                                format!("earliest '{text}' must be a date written YYYY-MM-DD"),
                            );
                            None
                        }
                    },
                    None => None,
                };
                FieldType::Date {
                    allow_future: raw.allow_future.unwrap_or(false),
                    earliest,
                }
            }
            "text" => match raw.max_length {
                Some(n) if (1..=MAX_TEXT_LENGTH).contains(&n) => FieldType::Text {
                    max_length: usize::try_from(n).unwrap_or(1),
                },
                _ => {
                    self.problem(
                        location,
                        format!("a text field needs max_length from 1 to {MAX_TEXT_LENGTH}"),
                    );
                    return None;
                }
            },
            "opcs4_code" => {
                let version = raw
                    .opcs4_version
                    .clone()
                    .unwrap_or_else(|| Opcs4Code::DEFAULT_VERSION.to_string());
                if let Err(e) = Opcs4Code::parse("W37.1", &version) {
                    self.problem(location.clone(), format!("opcs4_version {}", e.problem));
                }
                FieldType::Opcs4Code { version }
            }
            "boolean" => FieldType::Boolean,
            "udi_scan" => FieldType::UdiScan,
            "udi_di" => FieldType::UdiDi,
            "nhs_number" => FieldType::NhsNumber,
            "ods_code" => FieldType::OdsCode,
            "gmc_number" => FieldType::GmcNumber,
            "snomed_ct_id" => FieldType::SnomedCtId,
            "laterality" => FieldType::Laterality,
            "sex" => FieldType::Sex,
            _ => FieldType::Postcode,
        };
        Some(FieldDefinition {
            name: raw.name.clone(),
            label,
            field_type,
            required: raw.required,
            description: raw.description.as_ref().map(|d| d.trim().to_string()),
        })
    }

    fn check_bounds(
        &mut self,
        location: &Option<String>,
        min: f64,
        max: f64,
        plausible_min: Option<f64>,
        plausible_max: Option<f64>,
    ) {
        let finite = [Some(min), Some(max), plausible_min, plausible_max]
            .into_iter()
            .flatten()
            .all(f64::is_finite);
        if !finite || min > max {
            self.problem(location.clone(), "min must not be greater than max");
            return;
        }
        let inside = |p: Option<f64>| p.is_none_or(|p| (min..=max).contains(&p));
        if !inside(plausible_min) || !inside(plausible_max) {
            self.problem(
                location.clone(),
                "plausible_min and plausible_max must lie between min and max",
            );
        }
        if let (Some(low), Some(high)) = (plausible_min, plausible_max)
            && low > high
        {
            self.problem(
                location.clone(),
                "plausible_min must not be greater than plausible_max",
            );
        }
    }

    fn rule(
        &mut self,
        raw: &RawRule,
        location: &str,
        definition: &DatasetDefinition,
    ) -> Option<Rule> {
        let loc = Some(location.to_string());
        let given = [
            ("field", raw.field.is_some()),
            ("fields", raw.fields.is_some()),
            ("when", raw.when.is_some()),
            ("earlier", raw.earlier.is_some()),
            ("later", raw.later.is_some()),
            ("left", raw.left.is_some()),
            ("op", raw.op.is_some()),
            ("right", raw.right.is_some()),
            ("value", raw.value.is_some()),
            ("device_types", raw.device_types.is_some()),
            ("date_of_birth", raw.date_of_birth.is_some()),
            ("on", raw.on.is_some()),
            ("min_years", raw.min_years.is_some()),
            ("max_years", raw.max_years.is_some()),
        ];
        let allowed: &[&str] = match raw.kind.as_str() {
            "required_if" | "forbidden_unless" => &["field", "when"],
            "at_least_one_of" => &["fields"],
            "date_order" => &["earlier", "later"],
            "compare" => &["left", "op", "right", "value"],
            "laterality_required" => &["field", "when", "device_types"],
            "age" => &["date_of_birth", "on", "min_years", "max_years"],
            other => {
                self.problem(
                    loc,
                    format!(
                        "unknown rule kind '{other}'; expected required_if, forbidden_unless, at_least_one_of, date_order, compare, laterality_required or age"
                    ),
                );
                return None;
            }
        };
        for (key, present) in given {
            if present && !allowed.contains(&key) {
                self.problem(
                    loc.clone(),
                    format!("'{key}' does not apply to a {} rule", raw.kind),
                );
            }
        }
        let message = match &raw.message {
            Some(m) if m.trim().is_empty() || m.chars().any(char::is_control) => {
                self.problem(loc.clone(), "message must be printable text");
                None
            }
            other => other.as_ref().map(|m| m.trim().to_string()),
        };
        let before = self.problems.len();
        let kind = match raw.kind.as_str() {
            "required_if" | "forbidden_unless" => {
                let target = self.target(&loc, "field", raw.field.as_deref(), definition);
                let when = self.condition(&loc, raw.when.as_ref(), definition);
                let (target, when) = (target?, when?);
                if raw.kind == "required_if" {
                    RuleKind::RequiredIf { target, when }
                } else {
                    RuleKind::ForbiddenUnless { target, when }
                }
            }
            "at_least_one_of" => {
                let names = raw.fields.clone().unwrap_or_default();
                if names.len() < 2 {
                    self.problem(loc.clone(), "'fields' must name at least two fields");
                }
                let fields: Vec<FieldRef> = names
                    .iter()
                    .filter_map(|name| self.field_ref(&loc, "fields", Some(name), definition))
                    .collect();
                RuleKind::AtLeastOneOf { fields }
            }
            "date_order" => {
                let earlier = self.typed_field(
                    &loc,
                    "earlier",
                    raw.earlier.as_deref(),
                    definition,
                    "date",
                    |t| matches!(t, FieldType::Date { .. }),
                );
                let later = self.typed_field(
                    &loc,
                    "later",
                    raw.later.as_deref(),
                    definition,
                    "date",
                    |t| matches!(t, FieldType::Date { .. }),
                );
                RuleKind::DateOrder {
                    earlier: earlier?,
                    later: later?,
                }
            }
            "compare" => {
                let left = self.typed_field(
                    &loc,
                    "left",
                    raw.left.as_deref(),
                    definition,
                    "integer or decimal",
                    FieldType::is_numeric,
                );
                let op = match raw.op.as_deref() {
                    Some("<") => Some(CompareOp::Less),
                    Some("<=") => Some(CompareOp::LessOrEqual),
                    Some(">") => Some(CompareOp::Greater),
                    Some(">=") => Some(CompareOp::GreaterOrEqual),
                    Some("==") => Some(CompareOp::Equal),
                    Some("!=") => Some(CompareOp::NotEqual),
                    other => {
                        self.problem(
                            loc.clone(),
                            format!("op {other:?} must be one of <, <=, >, >=, ==, !="),
                        );
                        None
                    }
                };
                let right = match (&raw.right, raw.value) {
                    (Some(right), None) => self
                        .typed_field(
                            &loc,
                            "right",
                            Some(right),
                            definition,
                            "integer or decimal",
                            FieldType::is_numeric,
                        )
                        .map(Operand::Field),
                    (None, Some(value)) if value.as_f64().is_finite() => {
                        Some(Operand::Number(value.as_f64()))
                    }
                    _ => {
                        self.problem(
                            loc.clone(),
                            "needs exactly one of 'right' (a field) or 'value' (a number)",
                        );
                        None
                    }
                };
                RuleKind::Compare {
                    left: left?,
                    op: op?,
                    right: right?,
                }
            }
            "laterality_required" => {
                let field = self.typed_field(
                    &loc,
                    "field",
                    raw.field.as_deref(),
                    definition,
                    "laterality",
                    |t| matches!(t, FieldType::Laterality),
                );
                let when = match &raw.when {
                    Some(when) => Some(self.condition(&loc, Some(when), definition)?),
                    None => None,
                };
                let mut device_types = Vec::new();
                for name in raw.device_types.iter().flatten() {
                    match Slug::parse_field(name, "device_type") {
                        Ok(slug) => device_types.push(slug),
                        Err(e) => self
                            .problem(loc.clone(), format!("device type '{name}': {}", e.problem)),
                    }
                }
                if when.is_none() && device_types.is_empty() {
                    self.problem(
                        loc.clone(),
                        "needs 'when' or 'device_types' (or both) to say when laterality is required",
                    );
                }
                RuleKind::LateralityRequired {
                    field: field?,
                    when,
                    device_types,
                }
            }
            _ => {
                let date_of_birth = self.typed_field(
                    &loc,
                    "date_of_birth",
                    raw.date_of_birth.as_deref(),
                    definition,
                    "date",
                    |t| matches!(t, FieldType::Date { .. }),
                );
                let on = self.typed_field(&loc, "on", raw.on.as_deref(), definition, "date", |t| {
                    matches!(t, FieldType::Date { .. })
                });
                let min_years = raw.min_years.unwrap_or(0);
                let max_years = raw.max_years.unwrap_or(-1);
                if !(0..=150).contains(&min_years) || !(min_years..=150).contains(&max_years) {
                    self.problem(
                        loc.clone(),
                        "needs max_years (and optionally min_years) with 0 <= min_years <= max_years <= 150",
                    );
                }
                RuleKind::Age {
                    date_of_birth: date_of_birth?,
                    on: on?,
                    min_years: u32::try_from(min_years).unwrap_or(0),
                    max_years: u32::try_from(max_years).unwrap_or(0),
                }
            }
        };
        if self.problems.len() > before {
            return None;
        }
        let scope = self.scope(&loc, &kind)?;
        Some(Rule {
            kind,
            scope,
            message,
        })
    }

    /// The one group a rule's fields belong to, if any; fields of two groups cannot be
    /// compared item by item.
    fn scope(&mut self, location: &Option<String>, kind: &RuleKind) -> Option<Option<usize>> {
        let mut refs: Vec<FieldRef> = Vec::new();
        let push_target = |target: &Target, refs: &mut Vec<FieldRef>| {
            if let Target::Field(field) = target {
                refs.push(*field);
            }
        };
        match kind {
            RuleKind::RequiredIf { target, when } | RuleKind::ForbiddenUnless { target, when } => {
                push_target(target, &mut refs);
                push_target(&when.target, &mut refs);
            }
            RuleKind::AtLeastOneOf { fields } => refs.extend(fields),
            RuleKind::DateOrder { earlier, later } => refs.extend([*earlier, *later]),
            RuleKind::Compare { left, right, .. } => {
                refs.push(*left);
                if let Operand::Field(right) = right {
                    refs.push(*right);
                }
            }
            RuleKind::LateralityRequired { field, when, .. } => {
                refs.push(*field);
                if let Some(when) = when {
                    push_target(&when.target, &mut refs);
                }
            }
            RuleKind::Age {
                date_of_birth, on, ..
            } => refs.extend([*date_of_birth, *on]),
        }
        let groups: BTreeSet<usize> = refs.iter().filter_map(|r| r.group).collect();
        if groups.len() > 1 {
            self.problem(
                location.clone(),
                "names fields of two different groups; a rule can look inside one group only",
            );
            return None;
        }
        Some(groups.into_iter().next())
    }

    /// Resolves a name: a group (`devices`), a group field (`devices.udi`) or a top-level field.
    fn target(
        &mut self,
        location: &Option<String>,
        key: &str,
        name: Option<&str>,
        definition: &DatasetDefinition,
    ) -> Option<Target> {
        let Some(name) = name else {
            self.problem(location.clone(), format!("needs '{key}'"));
            return None;
        };
        if let Some(group) = definition.group_index(name) {
            return Some(Target::Group(group));
        }
        self.field_ref(location, key, Some(name), definition)
            .map(Target::Field)
    }

    fn field_ref(
        &mut self,
        location: &Option<String>,
        key: &str,
        name: Option<&str>,
        definition: &DatasetDefinition,
    ) -> Option<FieldRef> {
        let Some(name) = name else {
            self.problem(location.clone(), format!("needs '{key}'"));
            return None;
        };
        if let Some(index) = definition.top_field_index(name) {
            return Some(FieldRef { group: None, index });
        }
        let in_group = name.split_once('.').and_then(|(group_name, field_name)| {
            let group = definition.group_index(group_name)?;
            let index = definition.groups[group]
                .fields
                .iter()
                .position(|f| f.name == field_name)?;
            Some(FieldRef {
                group: Some(group),
                index,
            })
        });
        if in_group.is_none() {
            self.problem(
                location.clone(),
                format!("'{key}' names {name}, which is not a defined field"),
            );
        }
        in_group
    }

    fn typed_field(
        &mut self,
        location: &Option<String>,
        key: &str,
        name: Option<&str>,
        definition: &DatasetDefinition,
        expected: &str,
        accepts: impl Fn(&FieldType) -> bool,
    ) -> Option<FieldRef> {
        let field = self.field_ref(location, key, name, definition)?;
        let field_type = definition.field(field).field_type();
        if !accepts(field_type) {
            self.problem(
                location.clone(),
                format!(
                    "'{key}' names {}, a {} field; it must be {expected}",
                    name.unwrap_or_default(),
                    field_type.keyword()
                ),
            );
            return None;
        }
        Some(field)
    }

    fn condition(
        &mut self,
        location: &Option<String>,
        raw: Option<&RawCondition>,
        definition: &DatasetDefinition,
    ) -> Option<Condition> {
        let Some(raw) = raw else {
            self.problem(location.clone(), "needs 'when'");
            return None;
        };
        let target = self.target(location, "when.field", Some(&raw.field), definition)?;
        let tests = [
            raw.equals.is_some(),
            raw.in_list.is_some(),
            raw.not_in.is_some(),
            raw.present.is_some(),
        ];
        if tests.iter().filter(|&&t| t).count() != 1 {
            self.problem(
                location.clone(),
                "'when' needs exactly one of equals, in, not_in or present",
            );
            return None;
        }
        if let Some(present) = raw.present {
            return Some(Condition {
                target,
                test: Test::Present(present),
            });
        }
        let Target::Field(field) = target else {
            self.problem(
                location.clone(),
                format!(
                    "'when' can only test whether group {} is present",
                    raw.field
                ),
            );
            return None;
        };
        let field_definition = definition.field(field);
        if let FieldType::Code { code_list, .. } = field_definition.field_type()
            && definition.code_list(code_list).is_none()
        {
            // The field's missing list is already reported; its values cannot be checked.
            return None;
        }
        let mut canonical = |value: &RawScalar| -> Option<String> {
            let text = value.text();
            match condition_value(field_definition.field_type(), &text, definition) {
                Ok(value) => Some(value),
                Err(problem) => {
                    self.problem(
                        location.clone(),
                        format!("'when' value '{text}' for {}: {problem}", raw.field),
                    );
                    None
                }
            }
        };
        let test = if let Some(value) = &raw.equals {
            Test::Equals(canonical(value)?)
        } else {
            let (values, negated) = match (&raw.in_list, &raw.not_in) {
                (Some(values), _) => (values, false),
                (_, Some(values)) => (values, true),
                _ => return None,
            };
            let values: Vec<String> = values.iter().filter_map(&mut canonical).collect();
            if values.len()
                != raw
                    .in_list
                    .as_ref()
                    .or(raw.not_in.as_ref())
                    .map_or(0, Vec::len)
            {
                return None;
            }
            if values.is_empty() {
                self.problem(location.clone(), "'when' lists no values");
                return None;
            }
            if negated {
                Test::NotIn(values)
            } else {
                Test::In(values)
            }
        };
        Some(Condition { target, test })
    }
}

/// The canonical form of a value written in a condition, as the field's parser returns it, so
/// that a condition can never test for a value the field cannot hold.
fn condition_value(
    field_type: &FieldType,
    text: &str,
    definition: &DatasetDefinition,
) -> Result<String, String> {
    match field_type {
        FieldType::Code { code_list, .. } => definition
            .code_list(code_list)
            .and_then(|list| list.find(text))
            .map(|code| code.code.clone())
            .ok_or_else(|| format!("is not in code list {code_list}")),
        FieldType::Boolean => crate::dataset::value::parse_boolean(text)
            .map(|b| b.to_string())
            .ok_or_else(|| "is not true or false".to_string()),
        FieldType::Laterality => Laterality::parse(text)
            .map(|l| l.as_str().to_string())
            .map_err(|e| e.problem),
        FieldType::Sex => Sex::parse(text)
            .map(|s| s.as_str().to_string())
            .map_err(|e| e.problem),
        FieldType::Integer { .. } => text
            .trim()
            .parse::<i64>()
            .map(|i| i.to_string())
            .map_err(|_| "is not a whole number".to_string()),
        FieldType::Text { .. } => Ok(text.trim().to_string()),
        other => Err(format!(
            "a condition can only compare code, boolean, laterality, sex, integer or text fields with a value, not {} fields; use present",
            other.keyword()
        )),
    }
}

/// Top-level names: 1 to 4 dot-separated parts, each a slug-like word.
fn valid_top_level_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() <= 4
        && parts.iter().all(|part| {
            (1..=40).contains(&part.len())
                && part.as_bytes()[0].is_ascii_lowercase()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// `breast.explant_reason` → `Explant reason`.
fn label_from_name(name: &str) -> String {
    let last = name.rsplit('.').next().unwrap_or(name).replace('_', " ");
    let mut chars = last.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
registry = "demo"
name = "Demo registry"
version = "1.0"
device_types = ["widget"]

[[fields]]
name = "procedure.action"
type = "code"
code_list = "action"
required = true

[[fields]]
name = "procedure.reason"
type = "text"
max_length = 50

[[rules]]
kind = "required_if"
field = "procedure.reason"
when = { field = "procedure.action", equals = "explant" }

[[code_lists.action]]
code = "implant"
label = "Implant"

[[code_lists.action]]
code = "explant"
label = "Explant"
"#;

    fn problems(text: &str) -> Vec<String> {
        match DatasetDefinition::parse("test.toml", text) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_minimal_definition_parses() {
        let definition = DatasetDefinition::parse("test.toml", MINIMAL).unwrap();
        assert_eq!(definition.registry().as_str(), "demo");
        assert_eq!(definition.version().to_string(), "1.0");
        assert_eq!(definition.fields()[1].label(), "Reason");
        assert_eq!(definition.rules.len(), 1);
    }

    #[test]
    fn versions_have_one_spelling_and_order_numerically() {
        assert!(DatasetVersion::parse("1.01").is_err());
        assert!(DatasetVersion::parse("1").is_err());
        assert!(DatasetVersion::parse("-1.0").is_err());
        assert!(DatasetVersion::parse("1.0.0").is_err());
        let v = |s| DatasetVersion::parse(s).unwrap();
        assert!(v("1.10") > v("1.9"));
        assert_eq!(v("10.0").to_string(), "10.0");
    }

    #[test]
    fn an_unknown_field_type_is_named_with_its_field() {
        let text = MINIMAL.replace("type = \"text\"", "type = \"txt\"");
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("field procedure.reason: unknown field type 'txt'")),
            "{found:?}"
        );
    }

    #[test]
    fn a_rule_naming_an_undefined_field_is_rejected() {
        let text = MINIMAL.replace(
            "field = \"procedure.reason\"",
            "field = \"procedure.reasons\"",
        );
        let found = problems(&text);
        assert_eq!(
            found,
            vec![
                "rule 1 (required_if): 'field' names procedure.reasons, which is not a defined field"
            ]
        );
    }

    #[test]
    fn a_missing_code_list_and_a_duplicate_field_are_both_reported() {
        let text = MINIMAL.replace("code_list = \"action\"", "code_list = \"actions\"")
            + "\n[[fields]]\nname = \"procedure.reason\"\ntype = \"boolean\"\n";
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p == "field procedure.action: code list 'actions' is not defined"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p == "field procedure.reason: is defined twice"),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p == "code list action: is not used by any field"),
            "{found:?}"
        );
    }

    #[test]
    fn a_condition_value_outside_the_code_list_is_rejected() {
        let text = MINIMAL.replace("equals = \"explant\"", "equals = \"explnt\"");
        let found = problems(&text);
        assert_eq!(
            found,
            vec![
                "rule 1 (required_if): 'when' value 'explnt' for procedure.action: is not in code list action"
            ]
        );
    }

    #[test]
    fn keys_that_do_not_apply_to_a_type_are_rejected() {
        let text = MINIMAL.replace("max_length = 50", "max_length = 50\nmin = 3");
        assert_eq!(
            problems(&text),
            vec!["field procedure.reason: 'min' does not apply to a text field"]
        );
    }

    #[test]
    fn unknown_keys_and_bad_toml_name_the_line() {
        let text = MINIMAL.replace("max_length = 50", "max_len = 50");
        let found = problems(&text);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("line") && found[0].contains("max_len"),
            "{found:?}"
        );
        let found = problems("registry = ");
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn labels_default_to_the_last_part_of_the_name() {
        assert_eq!(label_from_name("breast.explant_reason"), "Explant reason");
        assert_eq!(label_from_name("side"), "Side");
    }
}
