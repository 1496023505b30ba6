//! `GET /health`: open, for load balancers; reports whether the database is usable.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use mdor_service::Backend;

use crate::AppState;
use crate::dto::Health;

#[utoipa::path(get, path = "/health", security(()), responses(
    (status = 200, description = "Database reachable and schema current", body = Health),
    (status = 503, description = "Database unreachable or schema behind", body = Health),
))]
pub async fn health(State(state): State<AppState>) -> Response {
    let backend = match state.ctx.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    match state.ctx.check_ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
                backend: backend.into(),
            }),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable".into(),
                    backend: backend.into(),
                }),
            )
                .into_response()
        }
    }
}
