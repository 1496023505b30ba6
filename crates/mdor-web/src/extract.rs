//! Extractors: the caller's principal from a bearer token, JSON bodies whose errors name the
//! field, and the `Idempotency-Key` header with a hash of the body.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use mdor_service::{IdempotencyRequest, Principal, authenticate};

use crate::AppState;
use crate::error::ApiError;

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthenticated)?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or(ApiError::Unauthenticated)?;
        let principal = authenticate(&state.ctx, token.trim()).await?;
        Ok(Caller(principal))
    }
}

/// A JSON body and, when the client sent one, its idempotency key with the body's hash.
pub struct JsonCreate<T> {
    pub body: T,
    pub idempotency: Option<IdempotencyRequest>,
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonCreate<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let key = request
            .headers()
            .get("idempotency-key")
            .map(|v| v.to_str().map(str::to_string).map_err(|_| invalid_key()))
            .transpose()?;
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::MalformedJson(rejection.body_text())
                }
            })?;
        let body = parse_json(&bytes)?;
        let idempotency = match key {
            Some(key) => Some(IdempotencyRequest::new(
                &key,
                hex::encode(Sha256::digest(&bytes)),
            )?),
            None => None,
        };
        Ok(JsonCreate { body, idempotency })
    }
}

fn invalid_key() -> ApiError {
    ApiError::BadParameter {
        field: "Idempotency-Key".into(),
        message: "Idempotency-Key must be printable ASCII".into(),
    }
}

/// Deserialises JSON, reporting the path of the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would read a struct from a JSON array by position; every body here is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => return Err(ApiError::MalformedJson("request body is empty".into())),
        Some(_) => {
            return Err(ApiError::InvalidField {
                field: ".".into(),
                message: "request body must be a json object".into(),
            });
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::MalformedJson(format!("request body is not valid json: {inner}"))
        } else {
            ApiError::InvalidField {
                field,
                message: inner.to_string(),
            }
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(format!("trailing characters after json: {e}")))?;
    Ok(value)
}
