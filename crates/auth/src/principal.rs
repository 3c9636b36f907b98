use std::collections::BTreeSet;

use hubdir_core::{Origin, SiteName};

use crate::Scope;

/// Who is calling: a verified token's subject and grants, or nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `None` for an anonymous caller.
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub scopes: BTreeSet<Scope>,
    /// For publishers: the only origin whose sites they may write.
    pub origin: Option<Origin>,
    /// For publishers: the only operator whose sites they may write.
    pub operator: Option<String>,
    /// For measurement agents: the only sites they may report for.
    pub sites: BTreeSet<SiteName>,
}

/// Why a request was refused: UNAUTHENTICATED without a token, PERMISSION_DENIED with one
/// that does not allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal {
            subject: None,
            issuer: None,
            scopes: BTreeSet::new(),
            origin: None,
            operator: None,
            sites: BTreeSet::new(),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.subject.is_none()
    }

    /// Succeeds if the principal holds at least one of `scopes`.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), Denied> {
        if scopes.iter().any(|s| self.scopes.contains(s)) {
            return Ok(());
        }
        let wanted = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ");
        if self.is_anonymous() {
            Err(Denied::Unauthenticated(format!("this call needs a bearer token with scope {wanted}")))
        } else {
            Err(Denied::PermissionDenied(format!("the token does not grant {wanted}")))
        }
    }

    /// Succeeds if the principal may publish a site of this name run by this operator: the
    /// `sites.write` scope, and the token's origin and operator match the site's.
    pub fn require_publisher_of(&self, name: &SiteName, operator: &str) -> Result<(), Denied> {
        self.require_any(&[Scope::SitesWrite])?;
        match (&self.origin, &self.operator) {
            // An empty operator claim is no grant: it would match every site without one.
            (_, Some(own)) if own.trim().is_empty() => {
                Err(Denied::PermissionDenied("the token's operator claim is empty: it may publish nothing".into()))
            }
            (Some(origin), Some(own)) if origin == name.origin() && own == operator => Ok(()),
            (Some(origin), Some(_)) if origin != name.origin() => {
                Err(Denied::PermissionDenied(format!("the token publishes for origin {origin}, not {}", name.origin())))
            }
            (Some(_), Some(own)) => {
                Err(Denied::PermissionDenied(format!("the token publishes for operator {own:?}, not {operator:?}")))
            }
            _ => Err(Denied::PermissionDenied(
                "a sites.write token must carry the origin and operator claims it may publish for".into(),
            )),
        }
    }

    /// Succeeds if the principal may report connectivity for `site`.
    pub fn require_agent_for(&self, site: &SiteName) -> Result<(), Denied> {
        self.require_any(&[Scope::ConnectivityReport])?;
        if self.sites.contains(site) {
            Ok(())
        } else {
            Err(Denied::PermissionDenied(format!("the token may not report for {site}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher(origin: &str, operator: &str) -> Principal {
        Principal {
            subject: Some("pub".into()),
            issuer: Some("iss".into()),
            scopes: [Scope::SitesWrite].into(),
            origin: Some(origin.parse().unwrap()),
            operator: Some(operator.into()),
            ..Principal::anonymous()
        }
    }

    #[test]
    fn publishers_write_only_their_origin_and_operator() {
        let name: SiteName = "sites/zw/1".parse().unwrap();
        let p = publisher("zw", "ZimPost");
        assert_eq!(p.require_publisher_of(&name, "ZimPost"), Ok(()));
        assert!(matches!(p.require_publisher_of(&name, "Library Board"), Err(Denied::PermissionDenied(_))));
        assert!(matches!(
            publisher("ke", "ZimPost").require_publisher_of(&name, "ZimPost"),
            Err(Denied::PermissionDenied(_))
        ));
        assert!(matches!(
            Principal::anonymous().require_publisher_of(&name, "ZimPost"),
            Err(Denied::Unauthenticated(_))
        ));
        let unbound = Principal { origin: None, ..p };
        assert!(matches!(unbound.require_publisher_of(&name, "ZimPost"), Err(Denied::PermissionDenied(_))));
    }
}
