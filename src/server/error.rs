//! Errors a server answers with, grouped by cause, and their mapping to HTTP
//! status codes — in exactly one place ([`RequestError::status`]).

use crate::core::validate::InvalidInput;
use crate::pki::PkiError;
use http::StatusCode;

/// Why a request was not answered with a protocol outcome (PROTOCOL §1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Malformed body or field.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// `publicKeyPEM` unusable.
    #[error("publicKeyPEM: {0}")]
    BadKey(PkiError),
    /// `csrPEM` unusable or not matching the key.
    #[error("csrPEM: {0}")]
    BadCsr(PkiError),
    /// No client certificate where one is required.
    #[error("a client certificate issued by this server's CA is required")]
    Unauthenticated,
    /// The client certificate's role may not do this.
    #[error("client certificate role may not do this: {0}")]
    Forbidden(String),
    /// Unknown path.
    #[error("no such endpoint")]
    NotFound,
    /// Known path, wrong method.
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed {
        /// The method the endpoint takes.
        allow: &'static str,
    },
    /// A method token the server does not recognise at all (RFC 9110
    /// §15.6.2); a known method on the wrong endpoint is `MethodNotAllowed`.
    #[error("method not recognised")]
    NotImplemented,
    /// Body over the limit.
    #[error("request body larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The client was too slow to send its body.
    #[error("request body not received in time")]
    Timeout,
    /// A failure on our side (storage, signing).
    #[error("internal error: {0}")]
    Internal(String),
}

impl RequestError {
    /// The HTTP status for this error: the only place errors become codes.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::Invalid(_) | RequestError::BadKey(_) | RequestError::BadCsr(_) => {
                StatusCode::BAD_REQUEST
            }
            RequestError::Unauthenticated => StatusCode::UNAUTHORIZED,
            RequestError::Forbidden(_) => StatusCode::FORBIDDEN,
            RequestError::NotFound => StatusCode::NOT_FOUND,
            RequestError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            RequestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::Timeout => StatusCode::REQUEST_TIMEOUT,
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
