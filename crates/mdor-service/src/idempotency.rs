//! Idempotent creates: a client retrying with the same `Idempotency-Key` and the same body gets
//! the first result again; the same key with another body is refused.
//!
//! The record is written in the same transaction as the created data, so a retry after a lost
//! response can never create twice. What is stored is a reference to what was created (e.g.
//! `{"procedure_id":7}`); a replay renders that resource again.

use mdor_store::{IdempotencyRecord, NewIdempotencyRecord, StoreError};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;

/// The key a client sent and a hash of its request body.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest {
    pub key: String,
    pub request_hash: String,
}

impl IdempotencyRequest {
    /// Keys are 1 to 200 printable ASCII characters.
    pub fn new(key: &str, request_hash: String) -> Result<IdempotencyRequest, ServiceError> {
        if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::invalid(
                "Idempotency-Key",
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 200 printable ASCII characters",
            ));
        }
        Ok(IdempotencyRequest {
            key: key.to_string(),
            request_hash,
        })
    }
}

/// The result of a create: new, or a replay of an earlier identical request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Created(T),
    Replayed(T),
}

impl<T> Outcome<T> {
    pub fn into_inner(self) -> T {
        match self {
            Outcome::Created(t) | Outcome::Replayed(t) => t,
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self, Outcome::Replayed(_))
    }
}

/// The stored reference for an earlier request with this key, if any; an error when the key
/// was used with another body.
pub(crate) async fn earlier(
    ctx: &Ctx,
    principal: &Principal,
    request: Option<&IdempotencyRequest>,
) -> Result<Option<String>, ServiceError> {
    let Some(request) = request else {
        return Ok(None);
    };
    // Keys are remembered per API token, for systems that retry; a person's session has no
    // token to remember them under.
    let Some(token) = principal.token() else {
        return Err(ServiceError::invalid(
            "Idempotency-Key",
            "idempotency_key_needs_token",
            "Idempotency-Key is accepted only with an API token",
        ));
    };
    match ctx.store.idempotency_record(token, &request.key).await? {
        None => Ok(None),
        Some(IdempotencyRecord {
            request_hash,
            response_body,
            ..
        }) if request_hash == request.request_hash => Ok(Some(response_body)),
        Some(_) => Err(ServiceError::IdempotencyKeyReused),
    }
}

/// The record to write with the created data.
pub(crate) fn record(
    ctx: &Ctx,
    principal: &Principal,
    request: Option<&IdempotencyRequest>,
    reference: String,
) -> Option<NewIdempotencyRecord> {
    let token = principal.token()?;
    request.map(|r| NewIdempotencyRecord {
        token,
        key: r.key.clone(),
        request_hash: r.request_hash.clone(),
        response_status: 201,
        response_body: reference,
        created_at: ctx.now(),
    })
}

/// True when a write failed because a concurrent request with the same key won the race.
pub(crate) fn lost_race(error: &StoreError) -> bool {
    matches!(error, StoreError::Conflict { constraint } if constraint.contains("idempotency_key"))
}
