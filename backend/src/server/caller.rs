//! Owns who a request's caller is ([`Principal`]) and what its role allows; how the
//! caller is found (tokens, OIDC) belongs to [`super::auth`].

use super::ApiError;
use crate::config::Role;

/// The caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// When its credentials expire (a JWT's `exp`): open websockets are closed then.
    pub expires_at: Option<std::time::SystemTime>,
}

impl Principal {
    /// Refuses the call unless the caller has at least `role`.
    /// Posting events: the `ingest` role, or an admin; never a viewer or a supervisor
    /// (a wall screen's token must not be able to make up contacts).
    pub(crate) fn require_ingest(&self) -> Result<(), ApiError> {
        if matches!(self.role, Role::Ingest | Role::Admin) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{:?} {:?} may not post events: it needs the ingest role",
                self.role, self.name
            )))
        }
    }

    pub(crate) fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{:?} {:?} may not do this: it needs the {} role",
                self.role,
                self.name,
                role.as_str()
            )))
        }
    }
}
