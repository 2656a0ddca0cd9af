//! Offline approval: the host shows its signed challenge as text (and as a
//! QR code of that text); the device checks the signature, shows who signs
//! in where, and answers with an 8-digit code the user types at the prompt.
//!
//! - **Key**: `HKDF-SHA256(ikm = enrollment secret, salt = "", info =
//!   "pushmfa-offline-v1" || device id)`, 32 bytes. The enrollment secret
//!   only ever existed on the host and the device (it travelled by QR code),
//!   so neither the relay nor anyone else can derive it.
//! - **Code**: `HMAC-SHA256(key, "pushmfa-offline-v1\0" || encoded
//!   challenge)`; its first 8 bytes as a big-endian integer, mod 10^8, shown
//!   as `1234 5678`. The encoded challenge holds the challenge id, the host,
//!   the login's context and its expiry, so a code answers one challenge and
//!   nothing else, with no clock on the device.
//! - **Text**: `PUSHMFA-OFFLINE:` then the encoded challenge and the host's
//!   64-byte signature in RFC 4648 base32 (no padding). Upper-case letters,
//!   digits, `-` and `:` only: a QR code holds it in its compact
//!   alphanumeric mode, and it survives being pasted across wrapped lines.

use crate::envelope::{challenge_plaintext, split_challenge};
use crate::signed::{Challenge, SIGNATURE_LEN};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

pub const KEY_INFO: &[u8] = b"pushmfa-offline-v1";
pub const CODE_TAG: &[u8] = b"pushmfa-offline-v1\0";
pub const TEXT_PREFIX: &str = "PUSHMFA-OFFLINE:";
pub const KEY_LEN: usize = 32;
/// Digits in a response code: 10^8 values, about 2^26.6.
pub const CODE_DIGITS: usize = 8;
const CODE_MODULUS: u64 = 100_000_000;
/// Longest request text accepted (a challenge with every field at its
/// longest is about 1,400 bytes, 2,240 characters of base32).
pub const MAX_TEXT_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfflineError {
    #[error("not a pushmfa offline request (it starts with {TEXT_PREFIX})")]
    Prefix,
    #[error("the request is too long: was more than one request pasted?")]
    TooLong,
    #[error("the request has a character that is not base32 ({0:?}); was it copied whole?")]
    Character(char),
    #[error("the request is cut short or damaged; copy it again")]
    Damaged,
}

/// A device's offline key for one host (`device_id` is the device's id,
/// from its public key).
pub fn derive_key(enroll_secret: &[u8; 32], device_id: &[u8; 16]) -> Zeroizing<[u8; KEY_LEN]> {
    struct Len;
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            KEY_LEN
        }
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(enroll_secret);
    let info = [KEY_INFO, device_id.as_slice()];
    // Expanding to 32 bytes of SHA-256 output cannot fail (ring refuses only
    // more than 255 blocks); a zero key would then match no device's code.
    if let Ok(okm) = prk.expand(&info, Len) {
        let _ = okm.fill(&mut key[..]);
    }
    key
}

/// The response code for `encoded` (a `Challenge::encode()`), 0..10^8.
pub fn response_code(key: &[u8; KEY_LEN], encoded: &[u8]) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(CODE_TAG);
    ctx.update(encoded);
    let tag = ctx.sign();
    let mut first = [0u8; 8];
    first.copy_from_slice(&tag.as_ref()[..8]);
    // 2^64 mod 10^8 values come up once more than the rest: a bias of
    // 2^-37, nothing an attacker can use.
    (u64::from_be_bytes(first) % CODE_MODULUS) as u32
}

/// `12345678` as the user reads it: `1234 5678`.
pub fn format_code(code: u32) -> String {
    let digits = format!("{code:08}");
    format!("{} {}", &digits[..4], &digits[4..])
}

/// A typed code: exactly 8 digits, spaces and dashes ignored. None for
/// anything else (a recovery code, an empty line).
pub fn parse_code(typed: &str) -> Option<u32> {
    let mut digits = String::with_capacity(CODE_DIGITS);
    for c in typed.trim().chars() {
        match c {
            ' ' | '-' => {}
            '0'..='9' if digits.len() < CODE_DIGITS => digits.push(c),
            _ => return None,
        }
    }
    (digits.len() == CODE_DIGITS)
        .then(|| digits.parse().ok())
        .flatten()
}

/// The request a host shows: its challenge and its signature over it.
pub fn request_text(encoded: &[u8], signature: &[u8; SIGNATURE_LEN]) -> String {
    let mut text = String::from(TEXT_PREFIX);
    text.push_str(&base32_encode(&challenge_plaintext(encoded, signature)));
    text
}

/// A request as scanned or pasted: the encoded challenge (checked to
/// decode) and the host's signature, to be verified with the host key.
/// Whitespace anywhere is ignored (a paste across wrapped lines), and so is
/// the case of the letters.
pub fn parse_request_text(text: &str) -> Result<(Vec<u8>, [u8; SIGNATURE_LEN]), OfflineError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() > MAX_TEXT_LEN {
        return Err(OfflineError::TooLong);
    }
    let upper = compact.to_ascii_uppercase();
    let body = upper
        .strip_prefix(TEXT_PREFIX)
        .ok_or(OfflineError::Prefix)?;
    let plain = base32_decode(body)?;
    let (encoded, signature) = split_challenge(&plain).map_err(|_| OfflineError::Damaged)?;
    Challenge::decode(encoded).map_err(|_| OfflineError::Damaged)?;
    Ok((encoded.to_vec(), *signature))
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, no padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Inverse of [`base32_encode`] (upper case only). Leftover bits must be
/// zero and no more than a partial byte, so each byte string has exactly
/// one text.
pub fn base32_decode(text: &str) -> Result<Vec<u8>, OfflineError> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.chars() {
        let v = ALPHABET
            .iter()
            .position(|&a| a as char == c)
            .ok_or(OfflineError::Character(c))?;
        acc = ((acc << 5) | v as u32) & 0xFFFF;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits >= 5 || acc & ((1 << bits) - 1) != 0 {
        return Err(OfflineError::Damaged);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::Context;

    fn challenge() -> Challenge {
        Challenge {
            id: [7; 32],
            host_id: [9; 32],
            host_name: "web-1".into(),
            context: Context {
                user: "alice".into(),
                service: "sshd".into(),
                rhost: "203.0.113.7".into(),
                tty: "ssh".into(),
            },
            issued_at: 1_700_000_000,
            expires_at: 1_700_000_300,
        }
    }

    #[test]
    fn base32_matches_rfc4648_and_round_trips() {
        // RFC 4648 section 10, padding removed.
        for (plain, text) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), text);
            assert_eq!(base32_decode(text).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base32_decode(&base32_encode(&all)).unwrap(), all);
    }

    #[test]
    fn base32_refuses_garbage_and_non_canonical_text() {
        assert_eq!(base32_decode("MZ1"), Err(OfflineError::Character('1')));
        assert_eq!(base32_decode("mzxq"), Err(OfflineError::Character('m')));
        // "MZ" + one more char leaves 7 bits: not a whole byte, not a tail.
        assert_eq!(base32_decode("MZX"), Err(OfflineError::Damaged));
        // Non-zero leftover bits.
        assert_eq!(base32_decode("MZ"), Err(OfflineError::Damaged));
    }

    #[test]
    fn codes_are_formatted_and_parsed() {
        assert_eq!(format_code(12_345_678), "1234 5678");
        assert_eq!(format_code(42), "0000 0042");
        assert_eq!(parse_code("1234 5678"), Some(12_345_678));
        assert_eq!(parse_code(" 12345678\n"), Some(12_345_678));
        assert_eq!(parse_code("1234-5678"), Some(12_345_678));
        assert_eq!(parse_code("0000 0042"), Some(42));
        for bad in [
            "",
            "1234567",
            "123456789",
            "1234 567x",
            "ABCD-EFGH-JKMN-PQRS",
            "o",
            "١٢٣٤٥٦٧٨",
        ] {
            assert_eq!(parse_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_text_round_trips_and_tolerates_wrapping() {
        let c = challenge();
        let encoded = c.encode();
        let sig = [5u8; SIGNATURE_LEN];
        let text = request_text(&encoded, &sig);
        assert!(text.starts_with(TEXT_PREFIX));
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"-:".contains(&b)),
            "{text}"
        );
        let wrapped: String = text
            .as_bytes()
            .chunks(70)
            .map(|l| format!("  {}\n", std::str::from_utf8(l).unwrap().to_lowercase()))
            .collect();
        for t in [text.clone(), wrapped] {
            let (e, s) = parse_request_text(&t).unwrap();
            assert_eq!((e.as_slice(), s), (encoded.as_slice(), sig));
        }
    }

    #[test]
    fn request_text_refuses_garbage_truncation_and_oversize() {
        let text = request_text(&challenge().encode(), &[5; SIGNATURE_LEN]);
        assert_eq!(parse_request_text("hello"), Err(OfflineError::Prefix));
        assert_eq!(
            parse_request_text("pushmfa://enroll?v=1"),
            Err(OfflineError::Prefix)
        );
        assert_eq!(
            parse_request_text(&format!("{TEXT_PREFIX}AB!")),
            Err(OfflineError::Character('!'))
        );
        // Cut anywhere: damaged, never a shorter valid request.
        for cut in TEXT_PREFIX.len()..text.len() {
            assert!(parse_request_text(&text[..cut]).is_err(), "cut at {cut}");
        }
        let long = format!("{TEXT_PREFIX}{}", "A".repeat(MAX_TEXT_LEN));
        assert_eq!(parse_request_text(&long), Err(OfflineError::TooLong));
    }

    #[test]
    fn vectors() {
        use crate::test_vectors::{v, vectors};
        let secret: [u8; 32] = v("enroll_secret").try_into().unwrap();
        let device: [u8; 16] = v("device_id").try_into().unwrap();
        let key = derive_key(&secret, &device);
        assert_eq!(key.to_vec(), v("offline_key"));
        let encoded = v("challenge_encoded");
        let code = response_code(&key, &encoded);
        assert_eq!(
            format_code(code),
            vectors()["offline_code"].as_str().unwrap()
        );
        let sig: [u8; 64] = v("challenge_host_signature").try_into().unwrap();
        let text = request_text(&encoded, &sig);
        assert_eq!(text, vectors()["offline_request_text"].as_str().unwrap());
        assert_eq!(parse_request_text(&text).unwrap(), (encoded, sig));
    }

    #[test]
    fn a_code_answers_one_challenge_under_one_key() {
        let secret = [1u8; 32];
        let key = derive_key(&secret, &[2; 16]);
        let c = challenge();
        let code = response_code(&key, &c.encode());
        assert!(code < 100_000_000);
        // Another device, another enrollment, another challenge or expiry.
        assert_ne!(
            code,
            response_code(&derive_key(&secret, &[3; 16]), &c.encode())
        );
        assert_ne!(
            code,
            response_code(&derive_key(&[4; 32], &[2; 16]), &c.encode())
        );
        let mut other = c.clone();
        other.id[0] ^= 1;
        assert_ne!(code, response_code(&key, &other.encode()));
        let mut later = c.clone();
        later.expires_at += 1;
        assert_ne!(code, response_code(&key, &later.encode()));
    }
}
