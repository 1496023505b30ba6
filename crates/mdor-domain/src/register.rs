//! The device register: the catalogue of device models, keyed by UDI-DI, that implants are
//! matched against.

use serde::{Deserialize, Serialize};

use crate::identifiers::{RegistryCode, Slug};
use crate::record::FieldError;
use crate::udi::UdiDi;

/// Medical device risk classes under UK MDR 2002 that the registry follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RiskClass {
    #[serde(rename = "III")]
    III,
    #[serde(rename = "IIb")]
    IIb,
    #[serde(rename = "IIa")]
    IIa,
}

impl RiskClass {
    pub fn parse(input: &str) -> Result<RiskClass, FieldError> {
        match input.trim() {
            "III" | "3" => Ok(RiskClass::III),
            "IIb" | "IIB" | "2b" => Ok(RiskClass::IIb),
            "IIa" | "IIA" | "2a" => Ok(RiskClass::IIa),
            other => Err(FieldError::new(
                "risk_class",
                "invalid_risk_class",
                format!("risk_class '{other}' is not one of III, IIb, IIa"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RiskClass::III => "III",
            RiskClass::IIb => "IIb",
            RiskClass::IIa => "IIa",
        }
    }
}

/// One device model in the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterEntry {
    pub udi_di: UdiDi,
    pub manufacturer: String,
    pub brand: String,
    pub model: String,
    /// Kind of device, e.g. `hip_stem`, `breast_implant`, `cochlear_implant`.
    pub device_type: Slug,
    pub risk_class: RiskClass,
    pub registry: RegistryCode,
}

/// Unvalidated register fields as read from CSV or JSON.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RawRegisterEntry {
    pub udi_di: String,
    pub manufacturer: String,
    pub brand: String,
    pub model: String,
    pub device_type: String,
    pub risk_class: String,
    pub registry: String,
}

impl RawRegisterEntry {
    /// Validates every field and reports all problems at once.
    pub fn validate(&self) -> Result<RegisterEntry, Vec<FieldError>> {
        let mut errors = Vec::new();
        let udi_di = UdiDi::parse(&self.udi_di)
            .map_err(|e| errors.push(FieldError::new("udi_di", "invalid_udi", e.to_string())))
            .ok();
        let mut text = |value: &str, field: &'static str| {
            let value = value.trim();
            if value.is_empty() || value.chars().count() > 200 {
                errors.push(FieldError::new(
                    field,
                    "invalid_text",
                    format!("{field} must be 1 to 200 characters"),
                ));
            }
            value.to_string()
        };
        let manufacturer = text(&self.manufacturer, "manufacturer");
        let brand = text(&self.brand, "brand");
        let model = text(&self.model, "model");
        let device_type = Slug::parse_field(&self.device_type, "device_type")
            .map_err(|e| {
                errors.push(FieldError::new(
                    "device_type",
                    "invalid_device_type",
                    e.to_string(),
                ))
            })
            .ok();
        let risk_class = RiskClass::parse(&self.risk_class)
            .map_err(|e| errors.push(e))
            .ok();
        let registry = RegistryCode::parse(&self.registry)
            .map_err(|e| {
                errors.push(FieldError::new(
                    "registry",
                    "invalid_registry",
                    e.to_string(),
                ))
            })
            .ok();
        match (udi_di, device_type, risk_class, registry) {
            (Some(udi_di), Some(device_type), Some(risk_class), Some(registry))
                if errors.is_empty() =>
            {
                Ok(RegisterEntry {
                    udi_di,
                    manufacturer,
                    brand,
                    model,
                    device_type,
                    risk_class,
                    registry,
                })
            }
            _ => Err(errors),
        }
    }
}
