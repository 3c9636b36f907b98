use std::collections::HashMap;
use std::sync::Arc;

use hubdir_core::{ERROR_DOMAIN, Reason};
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{Principal, Verifier};

/// A tonic interceptor: verifies the bearer token (if any) and puts the [`Principal`] in the
/// request's extensions. No header means anonymous; a bad token is UNAUTHENTICATED at once.
#[derive(Debug, Clone)]
pub struct Authenticator {
    verifier: Arc<Verifier>,
}

impl Authenticator {
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Authenticator { verifier }
    }
}

fn unauthenticated(message: String) -> Status {
    let details = ErrorDetails::with_error_info(Reason::Unauthenticated.as_str(), ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::Unauthenticated, message, details)
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let principal = match request.metadata().get("authorization") {
            None => Principal::anonymous(),
            Some(value) => {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or_else(|| unauthenticated("authorization must be `Bearer <token>`".into()))?;
                self.verifier.verify(token.trim()).map_err(|err| {
                    tracing::warn!(reason = %err, "token refused");
                    unauthenticated(err.to_string())
                })?
            }
        };
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// The caller of a request that went through the [`Authenticator`]; anonymous otherwise.
pub fn principal<T>(request: &Request<T>) -> Principal {
    request.extensions().get::<Principal>().cloned().unwrap_or_else(Principal::anonymous)
}
