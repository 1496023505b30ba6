//! The two request headers by which a caller states why it reads identifiable records beyond
//! its own organisation, parsed once here for every such route:
//!
//! - `Access-Purpose`: `direct_care`, `recall`, `clinical_audit` or `investigation`;
//! - `Break-Glass-Reason`: breaking glass, with the written reason (1 to 500 characters of
//!   UTF-8 text).
//!
//! Headers rather than query parameters, so that the same two work on GET and POST alike and
//! a reason never lands in a URL that proxies and access logs keep. The reason is free text a
//! person typed: it is parsed into `BreakGlassReason`, whose `Debug` prints nothing, and it is
//! never logged (request spans name only the route template).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use mdor_domain::record::FieldError;
use mdor_service::{AccessPurpose, BreakGlassReason, StatedAccess};

use crate::error::ApiError;

/// The header naming the purpose of an identifiable read.
pub const ACCESS_PURPOSE_HEADER: &str = "Access-Purpose";
/// The header that breaks glass, carrying the written reason.
pub const BREAK_GLASS_REASON_HEADER: &str = "Break-Glass-Reason";

/// What the request states about its access; empty when it sends neither header.
pub struct AccessHeaders(pub StatedAccess);

impl<S: Send + Sync> FromRequestParts<S> for AccessHeaders {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let purpose = match parts.headers.get(ACCESS_PURPOSE_HEADER) {
            None => None,
            Some(value) => {
                let text = value.to_str().unwrap_or_default().trim();
                let purpose = AccessPurpose::parse(text).ok_or_else(|| {
                    ApiError::AccessHeader(FieldError::new(
                        ACCESS_PURPOSE_HEADER,
                        "purpose_not_in_code_list",
                        "Access-Purpose must be direct_care, recall, clinical_audit or investigation",
                    ))
                })?;
                Some(purpose)
            }
        };
        let break_glass = match parts.headers.get(BREAK_GLASS_REASON_HEADER) {
            None => None,
            Some(value) => {
                // Header values are bytes; a reason is UTF-8 text (HTTP allows bytes above
                // 0x7F in a field value, and `to_str` would refuse them).
                let text = std::str::from_utf8(value.as_bytes()).map_err(|_| {
                    ApiError::AccessHeader(FieldError::new(
                        BREAK_GLASS_REASON_HEADER,
                        "break_glass_reason_invalid",
                        "Break-Glass-Reason must be UTF-8 text",
                    ))
                })?;
                Some(
                    BreakGlassReason::parse(text, BREAK_GLASS_REASON_HEADER)
                        .map_err(ApiError::AccessHeader)?,
                )
            }
        };
        Ok(AccessHeaders(StatedAccess {
            purpose,
            break_glass,
        }))
    }
}

/// The two headers as the OpenAPI document describes them, for every route that takes them:
/// `params(…, AccessHeaderParams)` in its `utoipa::path`.
pub struct AccessHeaderParams;

impl utoipa::IntoParams for AccessHeaderParams {
    fn into_params(
        _parameter_in: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::schema::Type;
        use utoipa::openapi::{ObjectBuilder, Required};
        let purposes = AccessPurpose::ALL.map(AccessPurpose::as_str);
        vec![
            ParameterBuilder::new()
                .name(ACCESS_PURPOSE_HEADER)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Why the caller reads these identifiable records; recorded in the audit. \
                     Not needed for the caller's own organisation's records (direct care). \
                     Required beyond it (regulators: recall, clinical_audit or investigation; \
                     without it 422 purpose_required), and with Break-Glass-Reason for roles \
                     that do not give direct care (administrators).",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(purposes)),
                ))
                .build(),
            ParameterBuilder::new()
                .name(BREAK_GLASS_REASON_HEADER)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Breaks glass: a person (a session, never an API token) whose role may \
                     (consultants treating another provider's patient; administrators, who \
                     reach identifiable records no other way) states why, in 1 to 500 \
                     characters of UTF-8 text. The access is audited with the purpose \
                     break_glass:… and raises a review item that another administrator \
                     decides. Empty: 422 break_glass_reason_required; a role that may not: 403.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(mdor_domain::access::MAX_BREAK_GLASS_REASON_CHARS)),
                ))
                .build(),
        ]
    }
}
