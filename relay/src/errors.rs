//! Error answers: a status code, `{"error": ...}`, and for the answers
//! that say "later" (429, 503) how many seconds later.

use crate::store::Unavailable;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pushmfa_protocol::relay_api::ErrorBody;

/// An error answer.
#[derive(Debug)]
pub struct ApiError(pub(crate) StatusCode, String, Option<u64>);

impl ApiError {
    pub(crate) fn retry_after(mut self, secs: u64) -> ApiError {
        self.2 = Some(secs.max(1));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.0, Json(ErrorBody { error: self.1 })).into_response();
        if let Some(secs) = self.2 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        resp
    }
}

pub(crate) fn err(status: StatusCode, msg: impl Into<String>) -> ApiError {
    ApiError(status, msg.into(), None)
}

/// The store is down: nothing was decided, the client may try again soon.
impl From<Unavailable> for ApiError {
    fn from(_: Unavailable) -> ApiError {
        // Not logged per request: the store logs its outages once.
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the relay's store is unavailable; try again shortly",
        )
        .retry_after(1)
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
