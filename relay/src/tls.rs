//! TLS on the relay's own listener (rustls, HTTP/2 and HTTP/1.1 by ALPN):
//! the certificate chain and key come from PEM files and are read again on
//! SIGHUP or when either file changes, so a renewed certificate is served
//! without a restart. A file that does not load keeps the old pair in use.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// The certificate and key files, and the pair loaded from them.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of the files as last loaded.
    loaded: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Certificates({}, {})",
            self.cert.display(),
            self.key.display()
        )
    }
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Reads a chain and key; the errors name the file and say what is wrong.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain ({e})", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: holds no certificate", cert.display()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| format!("{}: not a PEM private key ({e})", key.display()))?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(|e| {
        format!(
            "{} and {}: {e} (is the key the certificate's?)",
            cert.display(),
            key.display()
        )
    })
}

impl Certificates {
    /// Loads the pair now; an error here stops the relay from starting.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificates>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = (modified(cert), modified(key));
        let pair = load_pair(cert, key, &provider)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(pair)),
            loaded: Mutex::new(stamps),
        }))
    }

    /// Loads the files again; an error leaves the old pair serving.
    pub fn reload(&self) -> Result<(), String> {
        let stamps = (modified(&self.cert), modified(&self.key));
        let pair = load_pair(&self.cert, &self.key, &self.provider)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(pair);
        }
        if let Ok(mut loaded) = self.loaded.lock() {
            *loaded = stamps;
        }
        Ok(())
    }

    /// Whether either file changed since it was last loaded.
    fn changed(&self) -> bool {
        let now = (modified(&self.cert), modified(&self.key));
        self.loaded.lock().is_ok_and(|l| *l != now)
    }

    /// A TLS acceptor that always serves the current pair.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// Reloads on SIGHUP, and when the files change (looked at every few
/// seconds: renewal tools replace them without telling anyone). Reports
/// each reload, or why one failed, on stderr.
pub async fn reload_forever(certs: Arc<Certificates>, every: Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(every);
    loop {
        let asked = tokio::select! {
            _ = async {
                match hup.as_mut() {
                    Some(h) => { h.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => true,
            _ = tick.tick() => false,
        };
        if !asked && !certs.changed() {
            continue;
        }
        let line = match certs.reload() {
            Ok(()) => format!(
                "pushmfa-relay: TLS certificate loaded again from {}\n",
                certs.cert.display()
            ),
            Err(e) => format!(
                "pushmfa-relay: TLS certificate NOT reloaded, the old one stays in use: {e}\n"
            ),
        };
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_garbage_and_mismatched_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let e = Certificates::load(&cert, &key).unwrap_err();
        assert!(e.contains("c.pem") && e.contains("No such file"), "{e}");
        std::fs::write(&cert, "garbage").unwrap();
        std::fs::write(&key, "garbage").unwrap();
        let e = Certificates::load(&cert, &key).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = Certificates::load(&cert, &key).unwrap_err();
        assert!(e.contains("k.pem: not a PEM private key"), "{e}");
    }
}
