//! A software authenticator: what a phone does, as a library and a CLI.
//!
//! It enrolls a fresh P-256 key from an enrollment URI, fetches pending
//! login requests from the relay, checks each one's host signature against
//! the host key learned at enrollment, and signs approve/deny/fraud answers.
//! It speaks protocol 2 (requests and answers sealed, so the relay cannot
//! read them) unless enrolled with protocol 1.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod args;
pub mod offline;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_protocol::enroll::{EnrollUri, RegistrationV2, registration_mac, registration_mac_v2};
use pushmfa_protocol::envelope;
use pushmfa_protocol::offline::derive_key as derive_offline_key;
use pushmfa_protocol::relay_api::{
    ChallengeResponse, DeviceChannel, DeviceRegistration, EnrollmentOutcome, PendingChallenge,
    PendingList,
};
use pushmfa_protocol::sealed::{self, Binding, Direction, OpeningKey};
use pushmfa_protocol::signed::{self, Approval, Challenge, Decision};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("store {path}: {msg}")]
    Store { path: String, msg: String },
    #[error("enrollment URI: {0}")]
    Uri(#[from] pushmfa_protocol::enroll::UriError),
    #[error("relay: {0}")]
    Relay(String),
    #[error("{0}")]
    Usage(String),
    #[error("key: {0}")]
    Key(&'static str),
    #[error("the computer refused this device: {0}")]
    Refused(String),
}

/// One enrolled account (host + user) with its own device key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub relay: String,
    pub channel_id: String,
    pub device_token: String,
    pub host_key: String,
    pub host_name: String,
    pub issuer: String,
    pub account: String,
    pub device_name: String,
    /// PKCS#8 of the device key (the store file is 0600).
    pub pkcs8: String,
    /// Protocol 2: the device's encryption key (its 32-byte scalar), which
    /// requests are sealed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal_key: Option<String>,
    /// Protocol 2: the host's encryption key, from its signed verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_encryption_key: Option<String>,
    /// The key offline codes are made with (protocol::offline), derived at
    /// enrollment. Absent: enrolled before offline approval existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_key: Option<String>,
}

impl Account {
    fn key(&self) -> Result<EcdsaKeyPair, AuthError> {
        let der = Zeroizing::new(
            B64.decode(&self.pkcs8)
                .map_err(|_| AuthError::Key("stored key is not base64"))?,
        );
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .map_err(|_| AuthError::Key("stored key is not a P-256 PKCS#8 key"))
    }

    pub(crate) fn host_key(&self) -> Result<Vec<u8>, AuthError> {
        B64.decode(&self.host_key)
            .map_err(|_| AuthError::Key("stored host key is not base64"))
    }

    /// The protocol this account speaks.
    pub fn protocol(&self) -> u8 {
        if self.seal_key.is_some() { 2 } else { 1 }
    }

    fn seal_key(&self) -> Result<Option<OpeningKey>, AuthError> {
        let Some(b64) = &self.seal_key else {
            return Ok(None);
        };
        let secret = Zeroizing::new(
            B64.decode(b64)
                .map_err(|_| AuthError::Key("stored encryption key is not base64"))?,
        );
        OpeningKey::from_secret(&secret)
            .map(Some)
            .map_err(|_| AuthError::Key("stored encryption key is not a P-256 key"))
    }

    fn host_encryption_key(&self) -> Result<Vec<u8>, AuthError> {
        self.host_encryption_key
            .as_deref()
            .and_then(|k| B64.decode(k).ok())
            .ok_or(AuthError::Key(
                "no host encryption key stored for this account",
            ))
    }
}

/// Accounts on disk: `<dir>/accounts.json`, mode 0600 in a 0700 directory.
pub struct Store {
    dir: PathBuf,
}

const FILE: &str = "accounts.json";

impl Store {
    pub fn open(dir: &Path) -> Result<Store, AuthError> {
        let err = |e: std::io::Error| AuthError::Store {
            path: dir.display().to_string(),
            msg: e.to_string(),
        };
        match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) => return Err(err(e)),
        }
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    /// Every enrolled account.
    pub fn accounts(&self) -> Result<Vec<Account>, AuthError> {
        let path = self.dir.join(FILE);
        let err = |msg: String| AuthError::Store {
            path: path.display().to_string(),
            msg,
        };
        match fs::read(&path) {
            Ok(b) if b.len() > 1024 * 1024 => Err(err("larger than 1 MiB".into())),
            Ok(b) => serde_json::from_slice(&b).map_err(|e| err(format!("corrupt: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(err(e.to_string())),
        }
    }

    fn save(&self, accounts: &[Account]) -> Result<(), AuthError> {
        let path = self.dir.join(FILE);
        let tmp = self.dir.join(format!(".{FILE}.tmp"));
        let bytes = Zeroizing::new(
            serde_json::to_vec_pretty(accounts).map_err(|e| AuthError::Usage(e.to_string()))?,
        );
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        result.map_err(|e| AuthError::Store {
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }
}

/// An HTTP client for the relay calls below (reuse it to keep connections).
/// It trusts the built-in Mozilla roots, or only the PEM certificates in
/// the file `SSL_CERT_FILE` names (a private CA, a self-signed relay).
pub fn http() -> Result<reqwest::Client, AuthError> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(90));
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        let shown = std::path::Path::new(&path).display().to_string();
        let pem = std::fs::read(&path)
            .map_err(|e| AuthError::Relay(format!("SSL_CERT_FILE {shown}: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| AuthError::Relay(format!("SSL_CERT_FILE {shown}: {e}")))?;
        builder = builder.tls_built_in_root_certs(false);
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    builder.build().map_err(|e| AuthError::Relay(e.to_string()))
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response, AuthError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    Err(AuthError::Relay(format!(
        "{status}: {}",
        body.chars().take(200).collect::<String>()
    )))
}

/// Enrolls a new key from `uri` and stores the account (protocol 2).
pub async fn enroll(store: &Store, uri: &str, device_name: &str) -> Result<Account, AuthError> {
    enroll_protocol(store, uri, device_name, 2).await
}

/// [`enroll`] speaking `protocol` (1: requests cross the relay readable,
/// for hosts and relays older than protocol 2).
pub async fn enroll_protocol(
    store: &Store,
    uri: &str,
    device_name: &str,
    protocol: u8,
) -> Result<Account, AuthError> {
    if !(1..=2).contains(&protocol) {
        return Err(AuthError::Usage("protocol: 1 or 2".into()));
    }
    let u = EnrollUri::parse(uri.trim())?;
    if device_name.is_empty() || device_name.len() > 64 {
        return Err(AuthError::Usage("device name: 1 to 64 bytes".into()));
    }
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| AuthError::Key("key generation failed"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| AuthError::Key("bad key"))?;
    let public = pair.public_key().as_ref().to_vec();
    let host_id = signed::host_id(&u.host_key);
    let seal = match protocol {
        2 => Some(OpeningKey::generate().map_err(|_| AuthError::Key("key generation failed"))?),
        _ => None,
    };
    let mac = match &seal {
        Some(k) => {
            let v2 = RegistrationV2 {
                encryption_key: &k.public_key(),
                passkey: &[],
            };
            registration_mac_v2(
                &u.secret,
                &u.enrollment_id,
                &host_id,
                &public,
                device_name,
                v2,
            )
        }
        None => registration_mac(&u.secret, &u.enrollment_id, &host_id, &public, device_name),
    };
    let reg = DeviceRegistration {
        public_key: B64.encode(&public),
        device_name: device_name.to_owned(),
        mac: B64.encode(mac),
        encryption_key: seal.as_ref().map(|k| B64.encode(k.public_key())),
        // A command-line authenticator cannot verify its user.
        passkey: None,
    };
    let url = format!(
        "{}/v1/enrollments/{}/device",
        u.relay.trim_end_matches('/'),
        u.enrollment_id
    );
    let resp = http()?
        .post(url)
        .json(&reg)
        .send()
        .await
        .map_err(|e| AuthError::Relay(e.to_string()))?;
    let channel: DeviceChannel = check(resp)
        .await?
        .json()
        .await
        .map_err(|e| AuthError::Relay(e.to_string()))?;
    let base = u.relay.trim_end_matches('/');
    let outcome_url = format!("{base}/v1/enrollments/{}/outcome", u.enrollment_id);
    let host_encryption_key = wait_outcome(
        &outcome_url,
        &channel.device_token,
        &u,
        &public,
        seal.is_some(),
    )
    .await?;
    let account = Account {
        relay: u.relay,
        channel_id: channel.channel_id,
        device_token: channel.device_token,
        host_key: B64.encode(u.host_key),
        host_name: u.host_name,
        issuer: u.issuer,
        account: u.account,
        device_name: device_name.to_owned(),
        pkcs8: B64.encode(pkcs8.as_ref()),
        seal_key: seal.as_ref().map(|k| B64.encode(k.secret())),
        host_encryption_key: host_encryption_key.map(|k| B64.encode(k)),
        offline_key: Some(B64.encode(*derive_offline_key(&u.secret, &signed::device_id(&public)))),
    };
    let mut all = store.accounts()?;
    all.push(account.clone());
    store.save(&all)?;
    Ok(account)
}

/// How long a registered device waits for the host's verdict.
const OUTCOME_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits for the host's signed verdict on this registration: the account
/// is stored only once the host itself accepted the key. Protocol 2: the
/// verdict carries the host's encryption key, under the signature.
async fn wait_outcome(
    url: &str,
    token: &str,
    u: &EnrollUri,
    public: &[u8],
    v2: bool,
) -> Result<Option<Vec<u8>>, AuthError> {
    let deadline = std::time::Instant::now() + OUTCOME_WAIT;
    let outcome: EnrollmentOutcome = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(AuthError::Relay(
                "the computer did not confirm the enrollment; see what pushmfa enroll printed there"
                    .into(),
            ));
        }
        let resp = http()?
            .get(format!("{url}?wait={}", left.as_secs().clamp(1, 30)))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| AuthError::Relay(e.to_string()))?;
        let resp = check(resp).await?;
        if resp.status() == reqwest::StatusCode::OK {
            break resp
                .json()
                .await
                .map_err(|e| AuthError::Relay(e.to_string()))?;
        }
    };
    let host_encryption_key = match (v2, &outcome.host_encryption_key) {
        (true, Some(k)) => Some(B64.decode(k).unwrap_or_default()),
        (true, None) => {
            return Err(AuthError::Relay(
                "the computer did not answer in protocol 2 (is its pushmfa older?); \
                 enroll with --protocol 1 there. Nothing was stored"
                    .into(),
            ));
        }
        (false, _) => None,
    };
    let message = match &host_encryption_key {
        Some(k) => signed::enrollment_outcome_v2(&u.enrollment_id, public, k, outcome.accepted),
        None => signed::enrollment_outcome(&u.enrollment_id, public, outcome.accepted),
    };
    let sig = B64.decode(&outcome.signature).unwrap_or_default();
    if signed::verify(&u.host_key, &message, &sig).is_err() {
        return Err(AuthError::Relay(
            "the enrollment answer was not signed by the computer; nothing was stored".into(),
        ));
    }
    if outcome.accepted {
        if let Some(k) = &host_encryption_key
            && !signed::valid_public_key(k)
        {
            return Err(AuthError::Relay(
                "the computer's encryption key is not a P-256 key; nothing was stored".into(),
            ));
        }
        Ok(host_encryption_key)
    } else {
        Err(AuthError::Refused(pushmfa_protocol::text::sanitize(
            &outcome.message,
            false,
        )))
    }
}

/// A login request whose host signature checked out.
#[derive(Debug, Clone)]
pub struct Request {
    pub account: Account,
    /// base64url challenge id, as the relay knows it.
    pub id: String,
    pub challenge: Challenge,
    pub expires_in: u64,
    /// Why the host refused the last answer to it, if it did.
    pub refused: Option<String>,
}

impl Request {
    /// What the user is asked to approve, with control characters removed.
    pub fn describe(&self) -> String {
        let refused = match &self.refused {
            Some(r) => format!(
                "; the computer refused the last answer ({})",
                pushmfa_protocol::text::sanitize(r, false)
            ),
            None => String::new(),
        };
        let when = format!("expires in {} s{refused}", self.expires_in);
        describe(&self.account, &self.challenge, &when)
    }
}

/// "ISSUER wants to sign in to HOST as USER with SERVICE from RHOST (tty
/// TTY), WHEN", every value a host or relay sent cleaned for the terminal.
pub(crate) fn describe(account: &Account, challenge: &Challenge, when: &str) -> String {
    let c = &challenge.context;
    let clean = |s: &str| pushmfa_protocol::text::sanitize(s, false);
    let or = |s: &str, none: &str| {
        if s.is_empty() {
            none.to_owned()
        } else {
            clean(s)
        }
    };
    format!(
        "{} wants to sign in to {} as {} with {} from {} (tty {}), {when}",
        clean(&account.issuer),
        clean(&challenge.host_name),
        clean(&c.user),
        clean(&c.service),
        or(&c.rhost, "this computer"),
        or(&c.tty, "-"),
    )
}

/// Pending requests of every account, waiting up to `wait` for one to
/// arrive. Requests that fail the host-signature check are reported in the
/// second list and never shown as approvable.
pub async fn pending(
    store: &Store,
    wait: Duration,
) -> Result<(Vec<Request>, Vec<String>), AuthError> {
    pending_with(&http()?, store, wait).await
}

/// [`pending`] over a given client (keeps connections across calls).
pub async fn pending_with(
    client: &reqwest::Client,
    store: &Store,
    wait: Duration,
) -> Result<(Vec<Request>, Vec<String>), AuthError> {
    let mut tasks = tokio::task::JoinSet::new();
    for account in store.accounts()? {
        let client = client.clone();
        tasks.spawn(async move {
            let url = format!(
                "{}/v1/channels/{}/challenges?wait={}",
                account.relay.trim_end_matches('/'),
                account.channel_id,
                wait.as_secs()
            );
            let resp = client
                .get(url)
                .bearer_auth(&account.device_token)
                .send()
                .await;
            (account, resp)
        });
    }
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        let Ok((account, resp)) = joined else {
            continue;
        };
        let resp = resp.map_err(|e| AuthError::Relay(e.to_string()))?;
        let list: PendingList = check(resp)
            .await?
            .json()
            .await
            .map_err(|e| AuthError::Relay(e.to_string()))?;
        for p in list.challenges {
            match verify_request(&account, &p) {
                Ok(challenge) if B64.encode(challenge.id) == p.id => ok.push(Request {
                    account: account.clone(),
                    id: p.id,
                    challenge,
                    expires_in: p.expires_in,
                    refused: p.refused,
                }),
                Ok(_) => bad.push(format!("{}: id does not match the signed challenge", p.id)),
                Err(e) => bad.push(format!("{}: {e}", p.id)),
            }
        }
    }
    Ok((ok, bad))
}

/// The challenge in `p` once its host signature checks out: opened first
/// if it came sealed. A protocol 2 account takes sealed requests only, a
/// protocol 1 account clear ones only.
fn verify_request(account: &Account, p: &PendingChallenge) -> Result<Challenge, String> {
    let (bytes, sig) = match (account.seal_key().map_err(|e| e.to_string())?, &p.sealed) {
        (Some(key), Some(sealed)) => {
            let sealed = B64
                .decode(sealed)
                .map_err(|_| "sealed request is not base64".to_string())?;
            let binding = Binding {
                channel: &account.channel_id,
                challenge_id: &p.id,
            };
            let plain = key
                .open(Direction::ToDevice, binding, &sealed)
                .map_err(|e| format!("sealed request refused: {e}; ignored"))?;
            let (encoded, sig) =
                envelope::split_challenge(&plain).map_err(|e| format!("sealed request: {e}"))?;
            (encoded.to_vec(), sig.to_vec())
        }
        (None, None) => (
            B64.decode(&p.challenge)
                .map_err(|_| "challenge is not base64".to_string())?,
            B64.decode(&p.signature)
                .map_err(|_| "signature is not base64".to_string())?,
        ),
        (Some(_), None) => {
            return Err("a request in clear to a protocol 2 device: ignored".into());
        }
        (None, Some(_)) => {
            return Err("a sealed request to a protocol 1 device: ignored".into());
        }
    };
    let host_key = account.host_key().map_err(|e| e.to_string())?;
    signed::verify(&host_key, &bytes, &sig)
        .map_err(|_| "NOT signed by the enrolled host: ignored".to_string())?;
    let c = Challenge::decode(&bytes).map_err(|e| e.to_string())?;
    if c.host_id != signed::host_id(&host_key) {
        return Err("challenge names another host".into());
    }
    Ok(c)
}

/// Signs and sends an answer to `req`.
pub async fn answer(
    req: &Request,
    decision: Decision,
    number: Option<u8>,
) -> Result<(), AuthError> {
    answer_with(&http()?, req, decision, number).await
}

/// [`answer`] over a given client (keeps connections across calls).
pub async fn answer_with(
    client: &reqwest::Client,
    req: &Request,
    decision: Decision,
    number: Option<u8>,
) -> Result<(), AuthError> {
    if decision == Decision::Approve && number.is_none_or(|n| n > 99) {
        return Err(AuthError::Usage(
            "approving needs the number shown at the login prompt (0-99)".into(),
        ));
    }
    let key = req.account.key()?;
    let device_id = signed::device_id(key.public_key().as_ref());
    let number = if decision == Decision::Approve {
        number
    } else {
        None
    };
    let approval = Approval::answer(&req.challenge, decision, number, device_id);
    let bytes = approval.encode();
    let sig = key
        .sign(&SystemRandom::new(), &bytes)
        .map_err(|_| AuthError::Key("signing failed"))?;
    let body = response_body(req, bytes, sig.as_ref())?;
    let url = format!(
        "{}/v1/channels/{}/challenges/{}/response",
        req.account.relay.trim_end_matches('/'),
        req.account.channel_id,
        req.id
    );
    let resp = client
        .post(url)
        .bearer_auth(&req.account.device_token)
        .json(&body)
        .send()
        .await
        .map_err(|e| AuthError::Relay(e.to_string()))?;
    check(resp).await.map(|_| ())
}

/// The answer as the relay carries it: in clear (protocol 1), or sealed to
/// the host's encryption key and bound to the channel and request id.
fn response_body(
    req: &Request,
    approval: Vec<u8>,
    sig: &[u8],
) -> Result<ChallengeResponse, AuthError> {
    let mut body = ChallengeResponse {
        response: String::new(),
        signature: String::new(),
        sealed: None,
    };
    if req.account.protocol() < 2 {
        body.response = B64.encode(&approval);
        body.signature = B64.encode(sig);
        return Ok(body);
    }
    let plain = envelope::Answer {
        approval,
        signature: sig
            .try_into()
            .map_err(|_| AuthError::Key("signature is not 64 bytes"))?,
        assertion: None,
    }
    .encode()
    .map_err(|_| AuthError::Key("answer too long"))?;
    let binding = Binding {
        channel: &req.account.channel_id,
        challenge_id: &req.id,
    };
    let host = req.account.host_encryption_key()?;
    let sealed = sealed::seal(&host, Direction::ToHost, binding, &plain)
        .map_err(|_| AuthError::Key("cannot seal the answer to the host's key"))?;
    body.sealed = Some(B64.encode(sealed));
    Ok(body)
}

/// Picks the request `id` names (a prefix of its id), or the only one.
pub fn select<'a>(requests: &'a [Request], id: Option<&str>) -> Result<&'a Request, AuthError> {
    let matching: Vec<&Request> = requests
        .iter()
        .filter(|r| id.is_none_or(|p| r.id.starts_with(p)))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => Err(AuthError::Usage("no pending login request matches".into())),
        _ => Err(AuthError::Usage(
            "several login requests are pending: name one by its id".into(),
        )),
    }
}
