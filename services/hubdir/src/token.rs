//! `hubdir token`: development keys and tokens. Production issuers use their own identity
//! provider; a node only needs their public keys in `[[auth.issuers]]`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use hubdir_auth::dev::{self, TokenClaims};

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a key pair (KID.key.pem, readable by its owner only, and KID.pub.pem)
    /// and print the `[[auth.issuers]]` configuration that trusts it.
    Keygen {
        /// Where to write the key files.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The key id tokens will name in their header.
        #[arg(long)]
        kid: String,
        /// The issuer (`iss`) tokens signed with this key carry.
        #[arg(long, default_value = "hubdir-dev")]
        issuer: String,
        /// The audience (`aud`) the node expects.
        #[arg(long, default_value = "hubdir")]
        audience: String,
        /// An origin this issuer may grant (repeatable; `"*"` for any). Default: this node's
        /// own id (`--node-id`).
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// This node's id (`node.id`), the origin granted when no `--origin` is given.
        #[arg(long, value_name = "ID", env = "HUBDIR_NODE__ID", default_value = "local")]
        node_id: String,
        /// The key's algorithm: `EdDSA` (Ed25519) or `ES256` (ECDSA P-256).
        #[arg(long, default_value = "EdDSA", value_parser = ["EdDSA", "ES256"])]
        algorithm: String,
    },
    /// Sign a token with a private key made by `keygen` and print it.
    Issue {
        /// The private key file (KID.key.pem).
        #[arg(long)]
        key: PathBuf,
        /// The key's id, as `keygen --kid` named it: the node looks the key up by it.
        #[arg(long)]
        kid: String,
        /// The issuer (`iss`): the `[[auth.issuers]]` entry that trusts the key.
        #[arg(long, default_value = "hubdir-dev")]
        issuer: String,
        /// The audience (`aud`) the node expects.
        #[arg(long, default_value = "hubdir")]
        audience: String,
        /// Who the token speaks for.
        #[arg(long)]
        subject: String,
        /// Space-separated scopes: sites.read sites.write discovery.read connectivity.report federation.sync
        #[arg(long)]
        scope: String,
        /// For sites.write: the origin the bearer may publish for.
        #[arg(long)]
        origin: Option<String>,
        /// For sites.write: the operator the bearer may publish for.
        #[arg(long)]
        operator: Option<String>,
        /// For connectivity.report: a site the agent may report for (repeatable).
        #[arg(long = "site")]
        sites: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: i64,
    },
}

pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    match command {
        TokenCommand::Keygen { dir, kid, issuer, audience, origins, node_id, algorithm } => {
            let origins = if origins.is_empty() { vec![node_id] } else { origins };
            let generated = if algorithm == "ES256" { dev::generate_es256() } else { dev::generate_ed25519() };
            let (private, public) = generated.map_err(anyhow::Error::msg)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let private_file = dir.join(format!("{kid}.key.pem"));
            let public_file = dir.join(format!("{kid}.pub.pem"));
            write_private(&private_file, private.as_bytes())?;
            std::fs::write(&public_file, public).with_context(|| format!("cannot write {}", public_file.display()))?;
            writeln!(
                stdout,
                "# private key: {} (keep it secret)\n[[auth.issuers]]\nissuer = {issuer:?}\naudience = {audience:?}\norigins = {origins:?}\n\n[[auth.issuers.keys]]\nkid = {kid:?}\nalgorithm = {algorithm:?}\npublic_key_file = {:?}",
                private_file.display(),
                public_file.display().to_string()
            )?;
        }
        TokenCommand::Issue { key, kid, issuer, audience, subject, scope, origin, operator, sites, ttl_secs } => {
            let pem = std::fs::read(&key).with_context(|| format!("cannot read {}", key.display()))?;
            let now = chrono::Utc::now().timestamp();
            let claims = TokenClaims {
                iss: issuer,
                aud: audience,
                sub: subject,
                iat: now,
                exp: now + ttl_secs,
                scope,
                origin,
                operator,
                sites,
            };
            writeln!(stdout, "{}", dev::issue(&pem, &kid, &claims).map_err(anyhow::Error::msg)?)?;
        }
    }
    Ok(())
}

/// Writes a private key readable by its owner only.
fn write_private(path: &std::path::Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file =
        options.open(path).with_context(|| format!("cannot create {} (does it exist already?)", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}
