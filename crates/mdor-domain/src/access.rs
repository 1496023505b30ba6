//! Why identifiable data is read: the stated purpose of an access, and the written reason of
//! a break-glass access (a person reaching a record the policy does not give their role, for
//! an emergency). Both are parsed once at the edge; the policy decides who may state which
//! (`mdor_service::policy`), and every access is audited with its purpose.

use crate::record::FieldError;

/// The longest break-glass reason, in characters: enough for a sentence or two naming the
/// emergency, short enough to read in a review list.
pub const MAX_BREAK_GLASS_REASON_CHARS: usize = 500;

/// Why identifiable data is being read; recorded with every access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessPurpose {
    /// Treating the patient: the provider's own patients, or another's through break-glass.
    DirectCare,
    /// A recall or field safety action.
    Recall,
    ClinicalAudit,
    Investigation,
}

impl AccessPurpose {
    pub const ALL: [AccessPurpose; 4] = [
        AccessPurpose::DirectCare,
        AccessPurpose::Recall,
        AccessPurpose::ClinicalAudit,
        AccessPurpose::Investigation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessPurpose::DirectCare => "direct_care",
            AccessPurpose::Recall => "recall",
            AccessPurpose::ClinicalAudit => "clinical_audit",
            AccessPurpose::Investigation => "investigation",
        }
    }

    /// The purpose as the audit records a break-glass access made for it: marked as
    /// break-glass wherever the entry is shown (the patient's own access log included).
    pub fn break_glass_str(self) -> &'static str {
        match self {
            AccessPurpose::DirectCare => "break_glass:direct_care",
            AccessPurpose::Recall => "break_glass:recall",
            AccessPurpose::ClinicalAudit => "break_glass:clinical_audit",
            AccessPurpose::Investigation => "break_glass:investigation",
        }
    }

    pub fn parse(input: &str) -> Option<AccessPurpose> {
        AccessPurpose::ALL.into_iter().find(|p| p.as_str() == input)
    }
}

/// The written reason a person gives for breaking glass: 1 to 500 characters of text (trimmed,
/// no control characters). It is free text a person typed, so it may name anyone: `Debug`
/// prints nothing of it, and it is kept only in the access's review item, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct BreakGlassReason(String);

impl std::fmt::Debug for BreakGlassReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BreakGlassReason(<redacted>)")
    }
}

impl BreakGlassReason {
    /// Errors name `field` with the codes `break_glass_reason_required`,
    /// `break_glass_reason_too_long` and `break_glass_reason_invalid`.
    pub fn parse(input: &str, field: &str) -> Result<BreakGlassReason, FieldError> {
        let reason = input.trim();
        if reason.is_empty() {
            return Err(FieldError::new(
                field,
                "break_glass_reason_required",
                "breaking glass needs a written reason",
            ));
        }
        if reason.chars().count() > MAX_BREAK_GLASS_REASON_CHARS {
            return Err(FieldError::new(
                field,
                "break_glass_reason_too_long",
                format!(
                    "a break-glass reason is at most {MAX_BREAK_GLASS_REASON_CHARS} characters"
                ),
            ));
        }
        if reason.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "break_glass_reason_invalid",
                "a break-glass reason cannot contain control characters",
            ));
        }
        Ok(BreakGlassReason(reason.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_trimmed_bounded_and_never_printed_by_debug() {
        let reason = BreakGlassReason::parse("  unconscious in ED, hip implant unknown ", "r")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(reason.as_str(), "unconscious in ED, hip implant unknown");
        assert!(!format!("{reason:?}").contains("unconscious"));
        for (input, code) in [
            ("", "break_glass_reason_required"),
            ("   ", "break_glass_reason_required"),
            ("a\u{7}b", "break_glass_reason_invalid"),
        ] {
            let error = BreakGlassReason::parse(input, "r").err();
            assert_eq!(error.map(|e| e.code), Some(code), "{input:?}");
        }
        let longest = "é".repeat(MAX_BREAK_GLASS_REASON_CHARS);
        assert!(BreakGlassReason::parse(&longest, "r").is_ok());
        let error = BreakGlassReason::parse(&format!("{longest}e"), "r").err();
        assert_eq!(error.map(|e| e.code), Some("break_glass_reason_too_long"));
    }

    #[test]
    fn purposes_round_trip_and_break_glass_marks_its_purpose() {
        for purpose in AccessPurpose::ALL {
            assert_eq!(AccessPurpose::parse(purpose.as_str()), Some(purpose));
            assert_eq!(
                purpose.break_glass_str(),
                format!("break_glass:{}", purpose.as_str())
            );
        }
        assert_eq!(AccessPurpose::parse("break_glass"), None);
    }
}
