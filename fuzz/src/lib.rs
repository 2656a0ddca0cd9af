//! Fuzz targets: every parser that reads bytes an attacker controls.
//!
//! Each target takes raw bytes, must never panic, and checks a property
//! beyond "no crash" (canonical re-encoding, idempotence, no acceptance of
//! what nobody signed, no 5xx). `cargo fuzz` drives them through the
//! one-line binaries in `fuzz_targets/`; `tests/replay.rs` replays the
//! committed corpora and regression inputs under plain `cargo test`.
//!
//! | target            | parser (and where untrusted bytes come from)                   |
//! |-------------------|----------------------------------------------------------------|
//! | `signed_messages` | challenge / approval decode + signature check (relay, devices)  |
//! | `ipc_frame`       | IPC length prefix + JSON messages (any local user, the module)  |
//! | `enroll_uri`      | enrollment URI / app link + registration MAC (QR codes, relay)  |
//! | `relay_request`   | the relay's HTTP API bodies, through its real router (internet) |
//! | `config_toml`     | `pushmfa.toml` and `relay.toml` (admins, packaging)             |
//! | `recovery_code`   | recovery-code normalisation (what users type at the prompt)     |
//! | `state_file`      | per-user state files (disk corruption, restored backups)        |
//! | `sealed_messages` | protocol v2 sealed envelopes and their contents (relay, devices) |

mod relay;

use pushmfa_protocol::enroll::{EnrollUri, verify_registration_mac};
use pushmfa_protocol::envelope;
use pushmfa_protocol::ipc::{AdminReply, AdminRequest, Request, Response};
use pushmfa_protocol::passkey::Passkey;
use pushmfa_protocol::sealed::{self, Binding, Direction, OpeningKey};
use pushmfa_protocol::signed::{self, APPROVAL_TAG, Approval, CHALLENGE_TAG, Challenge};
use pushmfa_protocol::{FrameError, frame};
use std::path::Path;
use std::sync::OnceLock;

pub use relay::relay_request;

/// A P-256 public key whose private key was thrown away: nothing the
/// fuzzer makes may verify under it.
fn unknown_key() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key generation");
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("fresh key")
            .public_key()
            .as_ref()
            .to_vec()
    })
}

/// First byte: 0 challenge, 1 approval (the tag is added, so the fuzzer
/// spends its time after it); then the body; the last 64 bytes double as
/// a signature over the whole message.
pub fn signed_messages(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let tag = if kind & 1 == 0 {
        CHALLENGE_TAG
    } else {
        APPROVAL_TAG
    };
    let message = [tag, body].concat();
    if kind & 1 == 0 {
        if let Ok(c) = Challenge::decode(&message) {
            assert_eq!(
                c.encode(),
                message,
                "a challenge decodes from one encoding only"
            );
            assert!(c.context.fits());
        }
    } else if let Ok(a) = Approval::decode(&message) {
        assert_eq!(
            a.encode(),
            message,
            "an approval decodes from one encoding only"
        );
    }
    let sig = &data[data.len().saturating_sub(signed::SIGNATURE_LEN)..];
    assert!(
        signed::verify(unknown_key(), &message, sig).is_err(),
        "a signature nobody made verified"
    );
    // Keys of any length and content are refused, never a panic.
    let _ = signed::verify(body, &message, sig);
}

/// A whole frame: 4-byte length prefix then JSON, parsed as each message
/// type; whatever parses re-encodes to something that parses the same.
pub fn ipc_frame(data: &[u8]) {
    let mut reader = data;
    check_frame::<Request>(&mut { reader });
    check_frame::<Response>(&mut { reader });
    check_frame::<AdminRequest>(&mut { reader });
    check_frame::<AdminReply>(&mut reader);
    if data.len() >= 4 {
        let header = [data[0], data[1], data[2], data[3]];
        if let Ok(n) = frame::payload_len(header) {
            assert!(n > 0 && n <= pushmfa_protocol::MAX_FRAME_LEN);
        }
    }
}

fn check_frame<T>(reader: &mut &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let original_len = reader.len();
    match frame::read_frame::<T, _>(reader) {
        Ok(msg) => {
            let bytes = frame::encode(&msg).expect("a parsed message re-encodes");
            let again: T = frame::read_frame(&mut bytes.as_slice()).expect("and parses again");
            assert_eq!(again, msg, "decode(encode(x)) == x");
        }
        Err(FrameError::TooLarge(n)) => assert!(n > pushmfa_protocol::MAX_FRAME_LEN),
        Err(FrameError::Closed) => assert_eq!(original_len, 0),
        Err(_) => {}
    }
}

/// Text as an enrollment URI or app link; a parsed one prints back to a URI
/// that parses the same, and a MAC made of input bytes never verifies.
pub fn enroll_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = EnrollUri::parse(text) else {
        return;
    };
    let printed = uri.to_uri();
    // Percent-encoding can push a parsed URI past the 4096-byte input cap.
    if printed.len() <= 4096 {
        let again = EnrollUri::parse(&printed).expect("a printed URI parses");
        assert_eq!(again.to_uri(), printed, "URI round trip");
    }
    let link = uri.to_app_link();
    if link.len() <= 4096 {
        assert_eq!(EnrollUri::parse(&link).expect("app link").to_uri(), printed);
    }
    let host_id = signed::host_id(&uri.host_key);
    assert!(
        !verify_registration_mac(
            &uri.secret,
            &uri.enrollment_id,
            &host_id,
            &uri.host_key,
            &uri.account,
            uri.issuer.as_bytes(),
        ),
        "a MAC taken from the input verified"
    );
}

/// Text as `pushmfa.toml` and as `relay.toml`: an error or a config that
/// passed validation, never a panic.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/pushmfa/fuzz.toml");
    if let Err(e) = pushmfa_config::Config::parse(text, path) {
        assert!(!e.to_string().is_empty());
    }
    if let Err(e) = pushmfa_config::relay::RelayFile::parse(text, path) {
        assert!(!e.to_string().is_empty());
    }
}

/// What a user types at the prompt: normalised codes have the fixed
/// length and alphabet, and normalising is idempotent.
pub fn recovery_code(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    use pushmfa_helper::codes;
    if let Ok(code) = codes::normalize(text) {
        assert_eq!(code.len(), codes::CODE_CHARS);
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        assert_eq!(*codes::normalize(&code).expect("idempotent"), *code);
    }
}

/// Bytes of a state file: refused with a reason, or a state whose stored
/// hashing parameters are in range and which saves back to the same state.
pub fn state_file(data: &[u8]) {
    match pushmfa_state::parse_state(data) {
        Ok(state) => {
            let bytes = serde_json::to_vec(&state).expect("state serializes");
            let again = pushmfa_state::parse_state(&bytes).expect("saved state loads");
            assert_eq!(again, state, "load(save(x)) == x");
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
}

/// The binding protocol/testdata/vectors.json's `sealed_to_device` was
/// sealed with.
pub const SEALED_BINDING: Binding<'static> = Binding {
    channel: "Xw3Zr8Qk2LmN5pTa9VbC1d",
    challenge_id: "EREREREREREREREREREREREREREREREREREREREREREf",
};

/// That vector's recipient: the seed in corpus/sealed_messages opens.
fn sealed_recipient() -> &'static OpeningKey {
    static KEY: OnceLock<OpeningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../protocol/testdata/vectors.json"))
                .expect("vectors.json");
        let hex = vectors["sealed_recipient_secret"].as_str().expect("secret");
        let secret: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        OpeningKey::from_secret(&secret).expect("the vector's key")
    })
}

/// First byte: bit 0 picks the direction; the rest is a sealed message
/// for the vector's key and binding. What opens for one direction must not
/// open for the other, and comes out shorter than any padded size. Then
/// the same bytes as a plaintext: sealed and opened again, they come back
/// unchanged (trailing zeros and 0x80 bytes included); and as what travels
/// inside (`envelope`) and as a registered passkey: what decodes re-encodes
/// to the same bytes.
pub fn sealed_messages(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let (direction, other) = if kind & 1 == 0 {
        (Direction::ToDevice, Direction::ToHost)
    } else {
        (Direction::ToHost, Direction::ToDevice)
    };
    let key = sealed_recipient();
    if let Ok(plain) = key.open(direction, SEALED_BINDING, body) {
        assert!(plain.len() <= sealed::MAX_PLAINTEXT_LEN);
        assert_eq!(sealed::sealed_len(plain.len()), Some(body.len()));
        assert!(
            key.open(other, SEALED_BINDING, body).is_err(),
            "a sealed message opened for both directions"
        );
    }
    if let Ok(answer) = envelope::Answer::decode(body) {
        assert_eq!(
            answer.encode().as_deref(),
            Ok(body),
            "an answer decodes from one encoding only"
        );
    }
    let _ = envelope::split_challenge(body);
    if let Ok(passkey) = Passkey::decode(body) {
        assert_eq!(
            passkey.encode(),
            body,
            "a passkey decodes from one encoding only"
        );
    }
    match sealed::seal(&key.public_key(), direction, SEALED_BINDING, body) {
        Ok(again) => {
            let plain = key
                .open(direction, SEALED_BINDING, &again)
                .expect("what was just sealed opens");
            assert_eq!(&plain[..], body, "padding changed the plaintext");
        }
        Err(e) => assert!(body.len() > sealed::MAX_PLAINTEXT_LEN, "{e}"),
    }
}

/// Offline approval's texts (`protocol::offline`): a request as pasted or
/// scanned and a typed code. A request that parses has a challenge that
/// decodes, and writes back to the same text once whitespace and case are
/// set aside; base32 round-trips; a code that parses is 8 digits and
/// formats back to what was typed, spaces and dashes aside.
pub fn offline_request(data: &[u8]) {
    use pushmfa_protocol::offline::{
        base32_decode, base32_encode, format_code, parse_code, parse_request_text, request_text,
    };
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((encoded, signature)) = parse_request_text(text) {
        assert!(Challenge::decode(&encoded).is_ok());
        let again = request_text(&encoded, &signature);
        let typed: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        assert_eq!(again, typed, "a request parses from one text only");
    }
    if let Ok(bytes) = base32_decode(text) {
        assert_eq!(
            base32_encode(&bytes),
            text,
            "base32 decodes from one text only"
        );
    }
    assert_eq!(base32_decode(&base32_encode(data)).as_deref(), Ok(data));
    if let Some(code) = parse_code(text) {
        assert!(code < 100_000_000);
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(format_code(code).replace(' ', ""), digits);
    }
}
