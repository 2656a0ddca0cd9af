//! The host's signing key (P-256). Devices learn its public key at
//! enrollment and refuse any challenge it did not sign.
//!
//! Kept as PKCS#8 in `<state_dir>/host_key.pk8` (0600), created on first use.

use pushmfa_config::{OpenError, open_secure_file};
use pushmfa_protocol::signed;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use zeroize::Zeroizing;

pub struct HostKey {
    pair: EcdsaKeyPair,
    pub public: [u8; 65],
    pub id: [u8; 32],
    rng: SystemRandom,
}

impl HostKey {
    /// Loads the key from `state_dir`, creating it if it does not exist.
    pub fn load_or_create(state_dir: &Path, owner_uid: u32) -> Result<HostKey, String> {
        let path = state_dir.join("host_key.pk8");
        let rng = SystemRandom::new();
        let der = match open_secure_file(&path, owner_uid) {
            Ok(mut f) => {
                let mut der = Zeroizing::new(Vec::new());
                f.read_to_end(&mut der)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                der
            }
            Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| "cannot generate the host key".to_string())?;
                let der = Zeroizing::new(doc.as_ref().to_vec());
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                f.write_all(&der)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                der
            }
            Err(OpenError::Io(e)) => return Err(format!("{}: {e}", path.display())),
            Err(OpenError::Insecure(r)) => {
                return Err(format!(
                    "{}: insecure, refusing to use it: {r}",
                    path.display()
                ));
            }
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|_| format!("{}: not a P-256 PKCS#8 key", path.display()))?;
        let mut public = [0u8; 65];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(HostKey {
            id: signed::host_id(&public),
            public,
            pair,
            rng,
        })
    }

    /// Signs `message` (raw r || s).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| "signing failed".to_string())
    }
}

/// The host name devices are shown: `configured` (`push.host_name`) if
/// set, else the system's.
pub fn host_name(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_owned();
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_and_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        let a = HostKey::load_or_create(dir.path(), uid).unwrap();
        let b = HostKey::load_or_create(dir.path(), uid).unwrap();
        assert_eq!(a.public, b.public);
        let sig = b.sign(b"hello").unwrap();
        signed::verify(&a.public, b"hello", &sig).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("host_key.pk8");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            HostKey::load_or_create(dir.path(), uid)
                .err()
                .unwrap()
                .contains("insecure")
        );
    }
}
