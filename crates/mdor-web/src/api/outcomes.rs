//! `POST /api/v1/implants/{id}/removals` and `POST /api/v1/deaths`.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::response::Response;

use mdor_domain::NhsNumber;
use mdor_domain::record::FieldError;
use mdor_service::{ImplantId, RemovalRequest};

use crate::api::{identifiable, path_error};
use crate::dto::{DeathBody, DeathRecorded, RemovalBody, RemovalCreated, date, ident};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonCreate, RequestState};

/// Records that an implant was revised or explanted by the caller's organisation.
#[utoipa::path(post, path = "/api/v1/implants/{id}/removals", request_body = RemovalBody,
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = RemovalCreated),
        (status = 404, description = "No such implant for this patient", body = ErrorBody),
        (status = 409, description = "Implant already removed", body = ErrorBody),
        (status = 422, description = "Invalid fields, or removal dated before the implant or after death", body = ErrorBody),
    ))]
pub async fn record_removal(
    state: RequestState,
    Caller(principal): Caller,
    id: Result<Path<i64>, PathRejection>,
    JsonCreate { body, idempotency }: JsonCreate<RemovalBody>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|r| path_error(r, "id"))?;
    let (nhs_number, kind, removal_date, reason) = body.parse().map_err(ApiError::Validation)?;
    let request = RemovalRequest {
        implant: ImplantId(id),
        nhs_number,
        kind,
        removal_date,
        reason,
    };
    let outcome =
        mdor_service::record_removal(&state.ctx, &principal, request, idempotency).await?;
    let removal = outcome.into_inner();
    Ok(identifiable(
        StatusCode::CREATED,
        RemovalCreated {
            removal_id: removal.0,
            implant_id: id,
        },
    ))
}

/// Records a patient's death.
#[utoipa::path(post, path = "/api/v1/deaths", request_body = DeathBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, body = DeathRecorded),
        (status = 404, description = "No such patient treated by this organisation", body = ErrorBody),
        (status = 409, description = "A different date of death is recorded", body = ErrorBody),
        (status = 422, description = "Invalid fields, or death dated before a procedure", body = ErrorBody),
    ))]
pub async fn record_death(
    state: RequestState,
    Caller(principal): Caller,
    JsonCreate { body, idempotency }: JsonCreate<DeathBody>,
) -> Result<Response, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let nhs = ident(
        NhsNumber::parse(&body.nhs_number),
        "nhs_number",
        &mut errors,
    );
    let date_of_death = date(&body.date_of_death, "date_of_death", &mut errors);
    let (Some(nhs), Some(date_of_death)) = (nhs, date_of_death) else {
        return Err(ApiError::Validation(errors));
    };
    mdor_service::record_death(&state.ctx, &principal, &nhs, date_of_death, idempotency).await?;
    Ok(identifiable(
        StatusCode::CREATED,
        DeathRecorded { date_of_death },
    ))
}
