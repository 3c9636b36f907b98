//! The node's identity: its id and its Ed25519 signing key, kept in a file only its owner can
//! read (in Kubernetes, a Secret mounted as that file), never in the database, never logged.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read the node key {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create the node key {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("the node key {path} is not an Ed25519 PKCS#8 PEM key")]
    Format { path: PathBuf },
    #[error(
        "the node key {path} can be read by others (mode {mode:o}): chmod 600 it (a key file owned by root, as \
         Kubernetes mounts a Secret, may also be read by its group: at most 640)"
    )]
    Exposed { path: PathBuf, mode: u32 },
}

/// Who this node is, and the key it signs its origin's events with.
pub struct NodeIdentity {
    node_id: String,
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for NodeIdentity {
    /// The private key never appears in a log line, not even by accident.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity").field("node_id", &self.node_id).field("key_id", &self.key_id).finish()
    }
}

/// The key id of a public key: the node id and the first 8 bytes of the key's SHA-256. Derived
/// from the key itself, so an id can never name another key.
pub fn key_id(node_id: &str, public_key: &VerifyingKey) -> String {
    let digest = Sha256::digest(public_key.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{node_id}-{hex}")
}

impl NodeIdentity {
    /// Loads the key at `path`, or creates it there (owner-only) if there is none.
    pub fn load_or_create(node_id: &str, path: &Path) -> Result<NodeIdentity, IdentityError> {
        let key = match std::fs::read_to_string(path) {
            Ok(pem) => {
                check_private(path)?;
                SigningKey::from_pkcs8_pem(&pem).map_err(|_| IdentityError::Format { path: path.into() })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(source) => return Err(IdentityError::Read { path: path.into(), source }),
        };
        let key_id = key_id(node_id, &key.verifying_key());
        Ok(NodeIdentity { node_id: node_id.to_owned(), key, key_id })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// A secret for `purpose` derived from the node's key (SHA-256 of the purpose and the
    /// key): every process holding the key derives the same, and it reveals nothing of the key.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(purpose.as_bytes());
        hasher.update([0]);
        hasher.update(self.key.to_bytes());
        hasher.finalize().into()
    }

    /// Signs exactly these bytes.
    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.key.sign(bytes).to_bytes()
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let metadata = std::fs::metadata(path).map_err(|source| IdentityError::Read { path: path.into(), source })?;
    let mode = metadata.permissions().mode();
    if !private_enough(mode, metadata.uid()) {
        return Err(IdentityError::Exposed { path: path.into(), mode: mode & 0o777 });
    }
    Ok(())
}

#[cfg(unix)]
/// PostgreSQL's rule for its TLS key file: no access for others, nor for the group, except
/// that a file owned by root may be read by its group. That is how Kubernetes mounts a Secret
/// for a non-root process: owned by root, readable by the pod's `fsGroup` (mode 440).
fn private_enough(mode: u32, owner_uid: u32) -> bool {
    let forbidden = if owner_uid == 0 { 0o037 } else { 0o077 };
    mode & forbidden == 0
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), IdentityError> {
    Ok(())
}

fn create(path: &Path) -> Result<SigningKey, IdentityError> {
    let err = |source| IdentityError::Create { path: path.into(), source };
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| err(std::io::Error::other(e.to_string())))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(pem.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn only_a_root_owned_key_may_be_read_by_its_group() {
        assert!(private_enough(0o100600, 1000) && private_enough(0o400, 1000));
        assert!(!private_enough(0o640, 1000) && !private_enough(0o604, 1000));
        assert!(private_enough(0o440, 0) && private_enough(0o640, 0));
        assert!(!private_enough(0o660, 0) && !private_enough(0o444, 0) && !private_enough(0o644, 0));
    }

    #[test]
    fn a_key_is_created_private_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/node.key");
        let first = NodeIdentity::load_or_create("zw", &path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = NodeIdentity::load_or_create("zw", &path).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        assert_eq!(first.key_id(), again.key_id());
        assert!(first.key_id().starts_with("zw-") && first.key_id().len() == 3 + 16);
        // The debug form names the key, never shows it.
        let pem = std::fs::read_to_string(&path).unwrap();
        let body = pem.lines().nth(1).unwrap();
        assert!(!format!("{first:?}").contains(body));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        NodeIdentity::load_or_create("zw", &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeIdentity::load_or_create("zw", &path).unwrap_err();
        assert!(matches!(err, IdentityError::Exposed { mode: 0o644, .. }), "{err}");
    }

    #[test]
    fn garbage_is_not_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        std::fs::write(&path, "not a key").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(NodeIdentity::load_or_create("zw", &path), Err(IdentityError::Format { .. })));
    }
}
