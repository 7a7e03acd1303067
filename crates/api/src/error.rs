//! The one error type of the API and the single place that turns it into an answer:
//! a status, a stable snake_case `code`, one sentence, and the request id.
//! A 5xx never carries internal detail; that goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyledger_cluster::ProposeError;
use keyledger_model::{RejectCode, Rejection};
use keyledger_wire::{ErrorBody, ErrorDetail};

tokio::task_local! {
    /// The current request's id, set by the request-id middleware for the whole handler.
    pub(crate) static REQUEST_ID: String;
}

pub(crate) fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for `Retry-After`, on a `429`.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    pub(crate) fn with_retry_after(mut self, seconds: Option<u64>) -> ApiError {
        self.retry_after = seconds;
        self
    }

    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// Something that should not happen: logged in full, answered without detail.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(%detail, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the server failed to handle the request")
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The same error about one part of the request, e.g. `` `keys[3]` ``.
    pub(crate) fn about(mut self, part: &str) -> ApiError {
        self.message = format!("{part}: {}", self.message);
        self
    }

    /// The error's body, for an answer that carries several (one per item of a batch).
    pub(crate) fn detail(&self) -> ErrorDetail {
        ErrorDetail { code: self.code.to_string(), message: self.message.clone(), request_id: current_request_id() }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let status = match rejection.code {
            RejectCode::InvalidArgument => StatusCode::BAD_REQUEST,
            RejectCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            RejectCode::PermissionDenied => StatusCode::FORBIDDEN,
            RejectCode::NotFound => StatusCode::NOT_FOUND,
            RejectCode::Conflict | RejectCode::KeyLocked | RejectCode::LimitExceeded | RejectCode::CreationDisabled => {
                StatusCode::CONFLICT
            }
            RejectCode::RevisionMismatch => StatusCode::PRECONDITION_FAILED,
        };
        ApiError::new(status, rejection.code.as_str(), rejection.message)
    }
}

impl From<ProposeError> for ApiError {
    fn from(error: ProposeError) -> ApiError {
        match error {
            ProposeError::Unavailable(why) => {
                ApiError::unavailable(format!("{why}; nothing was written, it is safe to retry"))
            }
            ProposeError::OutcomeUnknown(why) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "outcome_unknown",
                format!("{why}; the change may still be applied — check before retrying"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.detail() };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
