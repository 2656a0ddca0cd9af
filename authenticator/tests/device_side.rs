//! The authenticator against the relay: enroll, see a signed request, answer it.
//! The host here is this test speaking protocol 1; protocol 2 runs against
//! the real helper in tests/scenarios/sealed_relay.rs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use pushmfa_authenticator::{Store, answer, enroll_protocol, pending, select};
use pushmfa_protocol::enroll::{EnrollUri, verify_registration_mac};
use pushmfa_protocol::relay_api::*;
use pushmfa_protocol::signed::{self, Approval, Challenge, Context, Decision};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use std::sync::Arc;
use std::time::Duration;

async fn relay() -> String {
    let relay =
        Arc::new(pushmfa_relay::Relay::open(pushmfa_relay::RelayConfig::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, pushmfa_relay::router(relay)).await });
    format!("http://{addr}")
}

fn key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

/// Opens an enrollment slot on the relay as a host with `host`'s key.
async fn open_enrollment(url: &str, host: &EcdsaKeyPair) -> (EnrollmentCreated, EnrollUri) {
    let created: EnrollmentCreated = reqwest::Client::new()
        .post(format!("{url}/v1/enrollments"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uri = EnrollUri {
        relay: url.to_owned(),
        enrollment_id: created.enrollment_id.clone(),
        secret: [42; 32],
        host_key: host.public_key().as_ref().try_into().unwrap(),
        host_name: "web-1".into(),
        issuer: "Example".into(),
        account: "alice".into(),
        user_verification: false,
    };
    (created, uri)
}

/// The device enrolls in the background: it waits for the host's verdict.
fn spawn_enroll(
    path: &std::path::Path,
    uri: &EnrollUri,
) -> tokio::task::JoinHandle<Result<pushmfa_authenticator::Account, pushmfa_authenticator::AuthError>>
{
    let (path, uri) = (path.to_owned(), uri.to_uri());
    tokio::spawn(async move {
        let store = Store::open(&path).unwrap();
        enroll_protocol(&store, &uri, "test phone", 1).await
    })
}

/// The host collects the registration.
async fn registration(url: &str, created: &EnrollmentCreated) -> EnrollmentResult {
    reqwest::Client::new()
        .get(format!(
            "{url}/v1/enrollments/{}?wait=5",
            created.enrollment_id
        ))
        .bearer_auth(&created.helper_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Posts a verdict on the registration of `device_pub`, signed by `signer`.
async fn post_verdict(
    url: &str,
    created: &EnrollmentCreated,
    device_pub: &[u8],
    signer: &EcdsaKeyPair,
) -> reqwest::StatusCode {
    let verdict = signed::enrollment_outcome(&created.enrollment_id, device_pub, true);
    let signature = signer.sign(&SystemRandom::new(), &verdict).unwrap();
    reqwest::Client::new()
        .post(format!(
            "{url}/v1/enrollments/{}/outcome",
            created.enrollment_id
        ))
        .bearer_auth(&created.helper_token)
        .json(&EnrollmentOutcome {
            accepted: true,
            message: String::new(),
            signature: B64.encode(signature),
            host_encryption_key: None,
        })
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn enroll_see_request_and_approve() {
    let url = relay().await;
    let http = reqwest::Client::new();
    let host = key();
    let host_pub: [u8; 65] = host.public_key().as_ref().try_into().unwrap();
    let (created, uri) = open_enrollment(&url, &host).await;
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let enrolling = spawn_enroll(&store_path, &uri);

    // The host side: the MAC proves the key came from whoever scanned the QR code.
    let result = registration(&url, &created).await;
    let device_pub = B64.decode(&result.registration.public_key).unwrap();
    let mac = B64.decode(&result.registration.mac).unwrap();
    let host_id = signed::host_id(&host_pub);
    assert!(verify_registration_mac(
        &[42; 32],
        &created.enrollment_id,
        &host_id,
        &device_pub,
        "test phone",
        &mac
    ));
    // Until the host posts its signed verdict the device stores nothing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!enrolling.is_finished());
    assert_eq!(post_verdict(&url, &created, &device_pub, &host).await, 204);
    let account = enrolling.await.unwrap().unwrap();
    assert_eq!(account.account, "alice");
    let store = Store::open(&store_path).unwrap();

    let challenge = Challenge {
        id: [9; 32],
        host_id,
        host_name: "web-1".into(),
        context: Context {
            user: "alice".into(),
            service: "sudo".into(),
            rhost: "".into(),
            tty: "pts/1\x1b[2J".into(),
        },
        issued_at: 100,
        expires_at: 160,
    };
    let post = |c: &Challenge, signer: &EcdsaKeyPair| {
        let bytes = c.encode();
        let sig = signer.sign(&SystemRandom::new(), &bytes).unwrap();
        PostChallenge {
            id: B64.encode(c.id),
            expires_in: 60,
            challenge: B64.encode(&bytes),
            signature: B64.encode(sig.as_ref()),
            sealed: None,
        }
    };
    let ch = &result.channel_id;
    // A request signed by some other key (a relay making one up) ...
    let mut forged = challenge.clone();
    forged.id = [8; 32];
    let st = http
        .post(format!("{url}/v1/channels/{ch}/challenges"))
        .bearer_auth(&result.helper_token)
        .json(&post(&forged, &key()))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, 201);
    // ... and the real one.
    let st = http
        .post(format!("{url}/v1/channels/{ch}/challenges"))
        .bearer_auth(&result.helper_token)
        .json(&post(&challenge, &host))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, 201);

    let (reqs, bad) = pending(&store, Duration::from_secs(5)).await.unwrap();
    assert_eq!(reqs.len(), 1, "only the host-signed request is approvable");
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].contains("NOT signed by the enrolled host"),
        "{bad:?}"
    );
    let text = reqs[0].describe();
    assert!(
        text.contains("web-1") && text.contains("sudo") && text.contains("this computer"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "control characters reach the screen: {text:?}"
    );

    let req = select(&reqs, None).unwrap();
    assert!(
        answer(req, Decision::Approve, None).await.is_err(),
        "approve without a number"
    );
    answer(req, Decision::Approve, Some(47)).await.unwrap();

    let resp: ChallengeResponse = http
        .get(format!(
            "{url}/v1/channels/{ch}/challenges/{}/response?wait=5",
            B64.encode(challenge.id)
        ))
        .bearer_auth(&result.helper_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bytes = B64.decode(&resp.response).unwrap();
    signed::verify(&device_pub, &bytes, &B64.decode(&resp.signature).unwrap()).unwrap();
    let approval = Approval::decode(&bytes).unwrap();
    assert_eq!(
        approval,
        Approval::answer(
            &challenge,
            Decision::Approve,
            Some(47),
            signed::device_id(&device_pub)
        )
    );

    // The key file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("store/accounts.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_verdict_not_signed_by_the_host_enrolls_nothing() {
    let url = relay().await;
    let (created, uri) = open_enrollment(&url, &key()).await;
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let enrolling = spawn_enroll(&store_path, &uri);
    let result = registration(&url, &created).await;
    let device_pub = B64.decode(&result.registration.public_key).unwrap();
    // The relay holds the enrollment token, not the host key: it says
    // "accepted" with a key of its own.
    assert_eq!(post_verdict(&url, &created, &device_pub, &key()).await, 204);
    let err = enrolling.await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("not signed by the computer"),
        "{err}"
    );
    let store = Store::open(&store_path).unwrap();
    assert!(store.accounts().unwrap().is_empty());
}
