//! The host's keys. Its signing key (P-256): devices learn its public key
//! at enrollment and refuse any challenge it did not sign. Its encryption
//! key (P-256, protocol v2): v2 devices learn it from the signed enrollment
//! outcome and seal their answers to it.
//!
//! Kept in `<state_dir>/host_key.pk8` (PKCS#8) and
//! `<state_dir>/host_seal_key` (the 32-byte scalar), both 0600, each
//! created on first use.

use pushmfa_config::{OpenError, open_secure_file};
use pushmfa_protocol::sealed::{self, OpeningKey};
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
    /// Opens what v2 devices seal to the host.
    pub seal: OpeningKey,
}

impl HostKey {
    /// Loads the keys from `state_dir`, creating any that does not exist.
    pub fn load_or_create(state_dir: &Path, owner_uid: u32) -> Result<HostKey, String> {
        let rng = SystemRandom::new();
        let path = state_dir.join("host_key.pk8");
        let der = load_or_create(&path, owner_uid, || {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map(|doc| Zeroizing::new(doc.as_ref().to_vec()))
                .map_err(|_| "cannot generate the host key".to_string())
        })?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|_| format!("{}: not a P-256 PKCS#8 key", path.display()))?;
        let mut public = [0u8; 65];
        public.copy_from_slice(pair.public_key().as_ref());
        let seal_path = state_dir.join("host_seal_key");
        let scalar = load_or_create(&seal_path, owner_uid, || {
            OpeningKey::generate()
                .map(|k| Zeroizing::new(k.secret().to_vec()))
                .map_err(|e| format!("cannot generate the host encryption key: {e}"))
        })?;
        let seal = OpeningKey::from_secret(&scalar).map_err(|_| {
            format!(
                "{}: not a P-256 private key ({} bytes expected)",
                seal_path.display(),
                sealed::SECRET_KEY_LEN
            )
        })?;
        Ok(HostKey {
            id: signed::host_id(&public),
            public,
            pair,
            rng,
            seal,
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

/// The secret in `path` (owned by `owner_uid`, not writable by others), or
/// a new one from `make`, written with mode 0600 if there is none yet.
fn load_or_create(
    path: &Path,
    owner_uid: u32,
    make: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, String>,
) -> Result<Zeroizing<Vec<u8>>, String> {
    match open_secure_file(path, owner_uid) {
        Ok(mut f) => {
            let mut bytes = Zeroizing::new(Vec::new());
            f.read_to_end(&mut bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(bytes)
        }
        Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = make()?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            f.write_all(&bytes)
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(bytes)
        }
        Err(OpenError::Io(e)) => Err(format!("{}: {e}", path.display())),
        Err(OpenError::Insecure(r)) => Err(format!(
            "{}: insecure, refusing to use it: {r}",
            path.display()
        )),
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

    const BINDING: sealed::Binding<'static> = sealed::Binding {
        channel: "c",
        challenge_id: "i",
    };

    #[test]
    fn a_broken_encryption_key_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        HostKey::load_or_create(dir.path(), uid).unwrap();
        let path = dir.path().join("host_seal_key");
        std::fs::write(&path, b"short").unwrap();
        let err = HostKey::load_or_create(dir.path(), uid).err().unwrap();
        assert!(
            err.contains("host_seal_key: not a P-256 private key"),
            "{err}"
        );
    }

    #[test]
    fn created_once_then_loaded_and_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        let a = HostKey::load_or_create(dir.path(), uid).unwrap();
        let b = HostKey::load_or_create(dir.path(), uid).unwrap();
        assert_eq!(a.public, b.public);
        assert_eq!(a.seal.public_key(), b.seal.public_key());
        let sealed = sealed::seal(
            &a.seal.public_key(),
            sealed::Direction::ToHost,
            BINDING,
            b"answer",
        )
        .unwrap();
        assert_eq!(
            &b.seal
                .open(sealed::Direction::ToHost, BINDING, &sealed)
                .unwrap()[..],
            b"answer"
        );
        for name in ["host_key.pk8", "host_seal_key"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                0o600,
                "{name}"
            );
        }
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
