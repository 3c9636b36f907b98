use std::fmt;
use std::str::FromStr;

/// What a token lets its bearer do. Tokens list scopes in the space-separated `scope` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read sites through RegistryService (ministries, partners).
    SitesRead,
    /// Publish sites of one origin and operator (the token's `origin` and `operator` claims).
    SitesWrite,
    /// Read DiscoveryService when anonymous discovery is switched off.
    DiscoveryRead,
    /// Report connectivity for the sites in the token's `sites` claim (measurement agents).
    ConnectivityReport,
    /// Follow this node's change feed (peer nodes).
    FederationSync,
}

impl Scope {
    pub const ALL: [Scope; 5] =
        [Scope::SitesRead, Scope::SitesWrite, Scope::DiscoveryRead, Scope::ConnectivityReport, Scope::FederationSync];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SitesRead => "sites.read",
            Scope::SitesWrite => "sites.write",
            Scope::DiscoveryRead => "discovery.read",
            Scope::ConnectivityReport => "connectivity.report",
            Scope::FederationSync => "federation.sync",
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| format!("unknown scope {s:?}"))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
