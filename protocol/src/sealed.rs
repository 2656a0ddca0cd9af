//! Protocol v2's sealed envelopes: what the relay carries and cannot read.
//!
//! HPKE (RFC 9180) in base mode with DHKEM(P-256, HKDF-SHA256), HKDF-SHA256
//! and AES-128-GCM. The plaintext is padded to one of [`PADDED_LENS`]
//! (ISO/IEC 7816-4: a 0x80 byte, then zeros), so a sealed message's length
//! says which size class it is in and nothing more. The associated data
//! binds it to one channel and one challenge id, and the HPKE `info` to its
//! direction, so a message cannot be replayed on another channel, for
//! another challenge, or back the other way. Layout: `enc` (the sender's
//! 65-byte ephemeral public key) || ciphertext (padded plaintext + 16-byte
//! tag). docs/protocol.md describes the same bytes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hpke::aead::AesGcm128;
use hpke::kdf::HkdfSha256;
use hpke::kem::DhP256HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

type Kem = DhP256HkdfSha256;

/// An uncompressed SEC1 P-256 public key.
pub const PUBLIC_KEY_LEN: usize = 65;
/// A P-256 private key (the big-endian scalar).
pub const SECRET_KEY_LEN: usize = 32;
/// The encapsulated key in front of every sealed message.
pub const ENC_LEN: usize = 65;
/// AES-128-GCM's tag.
pub const TAG_LEN: usize = 16;
/// The sizes a plaintext is padded to, smallest first. 1024 holds every
/// challenge with ordinary names and any answer; the largest holds the
/// longest challenge the v1 fields allow, and still fits a Web Push message
/// (RFC 8291 leaves 3993 bytes) as raw bytes.
pub const PADDED_LENS: [usize; 2] = [1024, 3072];
/// The longest plaintext that can be sealed (one byte goes to the padding).
pub const MAX_PLAINTEXT_LEN: usize = PADDED_LENS[PADDED_LENS.len() - 1] - 1;

const AAD_TAG: &[u8] = b"pushmfa-v2-sealed\0";

/// Which way a message travels; each direction has its own HPKE `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host to device: a challenge and the host's signature over it.
    ToDevice,
    /// Device to host: an answer and the device's signature over it.
    ToHost,
}

impl Direction {
    /// The HPKE `info` string.
    pub fn info(self) -> &'static [u8] {
        match self {
            Direction::ToDevice => b"pushmfa-v2 challenge",
            Direction::ToHost => b"pushmfa-v2 answer",
        }
    }
}

/// What a sealed message is bound to: its channel and its challenge id (as
/// they appear in the relay's URLs).
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub channel: &'a str,
    pub challenge_id: &'a str,
}

impl Binding<'_> {
    /// The associated data: the tag, then each id with a 2-byte big-endian
    /// length in front.
    pub fn aad(&self) -> Result<Vec<u8>, SealError> {
        let mut aad = AAD_TAG.to_vec();
        for part in [self.channel, self.challenge_id] {
            let len = u16::try_from(part.len()).map_err(|_| SealError::Binding)?;
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        Ok(aad)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("plaintext of {0} bytes is longer than {MAX_PLAINTEXT_LEN}")]
    TooLarge(usize),
    #[error("not a P-256 key")]
    BadKey,
    #[error("channel or challenge id too long to bind")]
    Binding,
    #[error("sealed message of {0} bytes is not one of the sealed sizes")]
    BadLength(usize),
    /// Tampered, sealed to another key, bound to another channel or
    /// challenge, or for the other direction: the cases are not told apart.
    #[error("sealed message does not open")]
    Refused,
    #[error("no randomness: {0}")]
    Random(String),
}

/// The length of the sealed message for a plaintext of `len` bytes.
pub fn sealed_len(len: usize) -> Option<usize> {
    padded_len(len).map(|p| ENC_LEN + p + TAG_LEN)
}

fn padded_len(len: usize) -> Option<usize> {
    PADDED_LENS.iter().copied().find(|&p| p > len)
}

/// Seals `plaintext` to `recipient` (a 65-byte public key).
pub fn seal(
    recipient: &[u8],
    direction: Direction,
    binding: Binding<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut ikm = Zeroizing::new([0u8; SECRET_KEY_LEN]);
    getrandom::fill(&mut ikm[..]).map_err(|e| SealError::Random(e.to_string()))?;
    seal_with_ephemeral(recipient, direction, binding, plaintext, &ikm)
}

/// [`seal`] with the ephemeral key derived from `ikm` (RFC 9180
/// DeriveKeyPair) instead of from fresh randomness: for test vectors.
#[doc(hidden)]
pub fn seal_with_ephemeral(
    recipient: &[u8],
    direction: Direction,
    binding: Binding<'_>,
    plaintext: &[u8],
    ikm: &[u8; SECRET_KEY_LEN],
) -> Result<Vec<u8>, SealError> {
    let padded_to = padded_len(plaintext.len()).ok_or(SealError::TooLarge(plaintext.len()))?;
    if recipient.len() != PUBLIC_KEY_LEN {
        return Err(SealError::BadKey);
    }
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient).map_err(|_| SealError::BadKey)?;
    let aad = binding.aad()?;
    let mut rng = GivenBytes::new(ikm);
    let (enc, mut ctx) = hpke::setup_sender::<AesGcm128, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &pk,
        direction.info(),
        &mut rng,
    )
    .map_err(|_| SealError::BadKey)?;
    if rng.overdrawn {
        return Err(SealError::Random("HPKE asked for more key material".into()));
    }
    let mut body = Zeroizing::new(Vec::with_capacity(padded_to + TAG_LEN));
    body.extend_from_slice(plaintext);
    body.push(0x80);
    body.resize(padded_to, 0);
    let tag = ctx
        .seal_in_place_detached(&mut body, &aad)
        .map_err(|_| SealError::Refused)?;
    let mut out = Vec::with_capacity(ENC_LEN + padded_to + TAG_LEN);
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag.to_bytes());
    Ok(out)
}

/// The private half of a recipient's key pair: opens what was sealed to its
/// public key. The scalar is zeroized when dropped.
pub struct OpeningKey {
    secret: Zeroizing<[u8; SECRET_KEY_LEN]>,
    public: [u8; PUBLIC_KEY_LEN],
}

impl OpeningKey {
    /// A new random key pair.
    pub fn generate() -> Result<OpeningKey, SealError> {
        let mut ikm = Zeroizing::new([0u8; SECRET_KEY_LEN]);
        getrandom::fill(&mut ikm[..]).map_err(|e| SealError::Random(e.to_string()))?;
        OpeningKey::derive(&ikm)
    }

    /// The key pair RFC 9180's DeriveKeyPair makes from `ikm`: what
    /// [`seal_with_ephemeral`] uses as its ephemeral key (test vectors).
    pub fn derive(ikm: &[u8; SECRET_KEY_LEN]) -> Result<OpeningKey, SealError> {
        let (sk, _) = Kem::derive_keypair(&ikm[..]);
        let secret = Zeroizing::new(<[u8; SECRET_KEY_LEN]>::from(sk.to_bytes()));
        OpeningKey::from_secret(&secret[..])
    }

    /// The key whose private scalar is `secret` (as [`OpeningKey::secret`]
    /// gave it).
    pub fn from_secret(secret: &[u8]) -> Result<OpeningKey, SealError> {
        let sk =
            <Kem as hpke::Kem>::PrivateKey::from_bytes(secret).map_err(|_| SealError::BadKey)?;
        let pk = Kem::sk_to_pk(&sk);
        let mut public = [0u8; PUBLIC_KEY_LEN];
        public.copy_from_slice(&pk.to_bytes());
        let mut kept = Zeroizing::new([0u8; SECRET_KEY_LEN]);
        kept.copy_from_slice(secret);
        Ok(OpeningKey {
            secret: kept,
            public,
        })
    }

    /// The private scalar, to store.
    pub fn secret(&self) -> &[u8; SECRET_KEY_LEN] {
        &self.secret
    }

    /// The public key to give the sender.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }

    /// Opens `sealed`: the plaintext without its padding.
    pub fn open(
        &self,
        direction: Direction,
        binding: Binding<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let padded = sealed
            .len()
            .checked_sub(ENC_LEN + TAG_LEN)
            .filter(|p| PADDED_LENS.contains(p))
            .ok_or(SealError::BadLength(sealed.len()))?;
        let aad = binding.aad()?;
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&self.secret[..])
            .map_err(|_| SealError::BadKey)?;
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[..ENC_LEN])
            .map_err(|_| SealError::Refused)?;
        let mut ctx = hpke::setup_receiver::<AesGcm128, HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            direction.info(),
        )
        .map_err(|_| SealError::Refused)?;
        let (body, tag) = sealed[ENC_LEN..].split_at(padded);
        let tag =
            hpke::aead::AeadTag::<AesGcm128>::from_bytes(tag).map_err(|_| SealError::Refused)?;
        let mut plain = Zeroizing::new(body.to_vec());
        ctx.open_in_place_detached(&mut plain, &aad, &tag)
            .map_err(|_| SealError::Refused)?;
        // Unpad: zeros back to the 0x80 marker. The AEAD already vouched
        // for these bytes; a sender that padded wrongly is refused anyway.
        let end = plain
            .iter()
            .rposition(|&b| b != 0)
            .filter(|&i| plain[i] == 0x80)
            .ok_or(SealError::Refused)?;
        plain.truncate(end);
        Ok(plain)
    }
}

impl std::fmt::Debug for OpeningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpeningKey")
            .field("public", &B64.encode(self.public))
            .finish_non_exhaustive()
    }
}

/// Hands HPKE exactly the bytes given (its ephemeral key's `ikm`); asking
/// for more marks it overdrawn, and the caller refuses the result.
struct GivenBytes<'a> {
    bytes: &'a [u8],
    overdrawn: bool,
}

impl<'a> GivenBytes<'a> {
    fn new(bytes: &'a [u8]) -> GivenBytes<'a> {
        GivenBytes {
            bytes,
            overdrawn: false,
        }
    }
}

impl hpke::rand_core::RngCore for GivenBytes<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let n = dest.len().min(self.bytes.len());
        dest[..n].copy_from_slice(&self.bytes[..n]);
        dest[n..].fill(0);
        self.bytes = &self.bytes[n..];
        if n < dest.len() {
            self.overdrawn = true;
        }
    }
}

// The bytes come from getrandom (or a test vector).
impl hpke::rand_core::CryptoRng for GivenBytes<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_vectors::{hex, unhex, v, vectors};

    fn rfc() -> serde_json::Value {
        serde_json::from_str(include_str!("../testdata/hpke-rfc9180-a3.json")).unwrap()
    }

    fn ikm(hex: &str) -> [u8; 32] {
        unhex(hex).try_into().unwrap()
    }

    const BINDING: Binding<'static> = Binding {
        channel: "Xw3Zr8Qk2LmN5pTa9VbC1d",
        challenge_id: "EREREREREREREREREREREREREREREREREREREREREREf",
    };

    /// RFC 9180 A.3.1 through the same crate calls `seal` and `open` make.
    #[test]
    fn the_rfc_9180_p256_vectors_pass() {
        let t = rfc();
        let s = |k: &str| unhex(t[k].as_str().unwrap());
        let (sk_r, pk_r) = Kem::derive_keypair(&s("ikmR"));
        assert_eq!(hex(&sk_r.to_bytes()), t["skRm"].as_str().unwrap());
        assert_eq!(hex(&pk_r.to_bytes()), t["pkRm"].as_str().unwrap());
        // The sender, with the vector's ephemeral key material.
        let ikm_e = ikm(t["ikmE"].as_str().unwrap());
        let mut rng = GivenBytes::new(&ikm_e);
        let (enc, mut sender) = hpke::setup_sender::<AesGcm128, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &pk_r,
            &s("info"),
            &mut rng,
        )
        .unwrap();
        assert!(!rng.overdrawn);
        assert_eq!(hex(&enc.to_bytes()), t["enc"].as_str().unwrap());
        // The receiver.
        let key = OpeningKey::from_secret(&s("skRm")).unwrap();
        assert_eq!(key.public_key().to_vec(), s("pkRm"));
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(key.secret()).unwrap();
        let mut receiver = hpke::setup_receiver::<AesGcm128, HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &<Kem as hpke::Kem>::EncappedKey::from_bytes(&s("enc")).unwrap(),
            &s("info"),
        )
        .unwrap();
        for e in t["encryptions"].as_array().unwrap() {
            let e = |k: &str| unhex(e[k].as_str().unwrap());
            let mut body = e("pt");
            let tag = sender.seal_in_place_detached(&mut body, &e("aad")).unwrap();
            body.extend_from_slice(&tag.to_bytes());
            assert_eq!(body, e("ct"));
            let ct = e("ct");
            let (c, tag) = ct.split_at(ct.len() - TAG_LEN);
            let mut plain = c.to_vec();
            let tag = hpke::aead::AeadTag::<AesGcm128>::from_bytes(tag).unwrap();
            receiver
                .open_in_place_detached(&mut plain, &e("aad"), &tag)
                .unwrap();
            assert_eq!(plain, e("pt"));
        }
    }

    /// The cross-language vector in testdata/vectors.json: the web app
    /// opens it and seals the same bytes with the same ephemeral key.
    #[test]
    fn the_sealed_challenge_vector_matches() {
        let key = OpeningKey::from_secret(&v("sealed_recipient_secret")).unwrap();
        assert_eq!(key.public_key().to_vec(), v("sealed_recipient_public"));
        let ikm_e = ikm(vectors()["sealed_ephemeral_ikm"].as_str().unwrap());
        let eph = OpeningKey::derive(&ikm_e).unwrap();
        assert_eq!(eph.secret().to_vec(), v("sealed_ephemeral_secret"));
        assert_eq!(eph.public_key().to_vec(), v("sealed_ephemeral_public"));
        let all = vectors();
        let binding = Binding {
            channel: all["sealed_channel"].as_str().unwrap(),
            challenge_id: all["sealed_challenge_id"].as_str().unwrap(),
        };
        assert_eq!(binding.aad().unwrap(), v("sealed_aad"));
        let plain = v("challenge_encoded");
        let sealed = seal_with_ephemeral(
            &key.public_key(),
            Direction::ToDevice,
            binding,
            &plain,
            &ikm_e,
        )
        .unwrap();
        assert_eq!(
            hex(&sealed),
            vectors()["sealed_to_device"].as_str().unwrap()
        );
        assert_eq!(
            &key.open(Direction::ToDevice, binding, &sealed).unwrap()[..],
            &plain[..]
        );
    }

    #[test]
    fn the_relay_knows_the_sealed_sizes() {
        let sizes: Vec<usize> = PADDED_LENS.iter().map(|p| ENC_LEN + p + TAG_LEN).collect();
        assert_eq!(sizes, crate::relay_api::SEALED_LENS);
    }

    #[test]
    fn every_plaintext_seals_to_a_fixed_size_and_opens() {
        let key = OpeningKey::generate().unwrap();
        for len in [0, 1, 200, 1023, 1024, 2000, MAX_PLAINTEXT_LEN] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8 | 1).collect();
            let sealed = seal(&key.public_key(), Direction::ToHost, BINDING, &plain).unwrap();
            let expect = if len < 1024 { 1024 } else { 3072 };
            assert_eq!(sealed.len(), ENC_LEN + expect + TAG_LEN, "{len}");
            assert_eq!(sealed_len(len), Some(sealed.len()));
            let opened = key.open(Direction::ToHost, BINDING, &sealed).unwrap();
            assert_eq!(&opened[..], &plain[..]);
        }
        // Trailing zeros in the plaintext survive the padding.
        let sealed = seal(
            &key.public_key(),
            Direction::ToHost,
            BINDING,
            &[0, 0x80, 0, 0],
        )
        .unwrap();
        assert_eq!(
            &key.open(Direction::ToHost, BINDING, &sealed).unwrap()[..],
            &[0, 0x80, 0, 0]
        );
        assert_eq!(
            seal(
                &key.public_key(),
                Direction::ToHost,
                BINDING,
                &vec![1; MAX_PLAINTEXT_LEN + 1]
            ),
            Err(SealError::TooLarge(MAX_PLAINTEXT_LEN + 1))
        );
        assert_eq!(sealed_len(MAX_PLAINTEXT_LEN + 1), None);
        // Two seals of one plaintext share nothing (fresh ephemeral keys).
        let a = seal(&key.public_key(), Direction::ToHost, BINDING, b"x").unwrap();
        let b = seal(&key.public_key(), Direction::ToHost, BINDING, b"x").unwrap();
        assert_ne!(a[..ENC_LEN], b[..ENC_LEN]);
    }

    #[test]
    fn another_key_binding_or_direction_is_refused() {
        let key = OpeningKey::generate().unwrap();
        let other = OpeningKey::generate().unwrap();
        let sealed = seal(&key.public_key(), Direction::ToDevice, BINDING, b"hello").unwrap();
        let refused = |k: &OpeningKey, d, b| k.open(d, b, &sealed).unwrap_err();
        assert_eq!(
            refused(&other, Direction::ToDevice, BINDING),
            SealError::Refused
        );
        assert_eq!(
            refused(&key, Direction::ToHost, BINDING),
            SealError::Refused
        );
        let moved = Binding {
            channel: "another-channel",
            ..BINDING
        };
        assert_eq!(
            refused(&key, Direction::ToDevice, moved),
            SealError::Refused
        );
        let renamed = Binding {
            challenge_id: "another-id",
            ..BINDING
        };
        assert_eq!(
            refused(&key, Direction::ToDevice, renamed),
            SealError::Refused
        );
        // The ids are length-prefixed: moving a byte across is another binding.
        let shifted = Binding {
            channel: "Xw3Zr8Qk2LmN5pTa9VbC1dE",
            challenge_id: &BINDING.challenge_id[1..],
        };
        assert_ne!(shifted.aad().unwrap(), BINDING.aad().unwrap());
        assert_eq!(
            refused(&key, Direction::ToDevice, shifted),
            SealError::Refused
        );
    }

    #[test]
    fn tampered_truncated_oversized_and_garbage_messages_are_refused() {
        let key = OpeningKey::generate().unwrap();
        let sealed = seal(&key.public_key(), Direction::ToDevice, BINDING, b"hello").unwrap();
        let open = |m: &[u8]| key.open(Direction::ToDevice, BINDING, m);
        for i in [0, 1, ENC_LEN - 1, ENC_LEN, ENC_LEN + 5, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert_eq!(open(&t), Err(SealError::Refused), "byte {i}");
        }
        for cut in [0, 1, ENC_LEN, ENC_LEN + TAG_LEN, sealed.len() - 1] {
            assert_eq!(open(&sealed[..cut]), Err(SealError::BadLength(cut)));
        }
        let mut long = sealed.clone();
        long.push(0);
        assert_eq!(open(&long), Err(SealError::BadLength(long.len())));
        assert_eq!(
            open(&vec![0u8; 1 << 20]),
            Err(SealError::BadLength(1 << 20))
        );
        assert_eq!(open(&vec![0u8; sealed.len()]), Err(SealError::Refused));
        let garbage: Vec<u8> = (0..sealed.len()).map(|i| (i * 31 % 256) as u8).collect();
        assert_eq!(open(&garbage), Err(SealError::Refused));
        // A sender that skipped the padding marker is refused too.
        let unpadded = {
            let ikm_e = [7u8; 32];
            let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&key.public_key()).unwrap();
            let mut rng = GivenBytes::new(&ikm_e);
            let (enc, mut ctx) = hpke::setup_sender::<AesGcm128, HkdfSha256, Kem, _>(
                &OpModeS::Base,
                &pk,
                Direction::ToDevice.info(),
                &mut rng,
            )
            .unwrap();
            let mut body = vec![0u8; 1024];
            let tag = ctx
                .seal_in_place_detached(&mut body, &BINDING.aad().unwrap())
                .unwrap();
            [enc.to_bytes().to_vec(), body, tag.to_bytes().to_vec()].concat()
        };
        assert_eq!(open(&unpadded), Err(SealError::Refused));
    }

    #[test]
    fn bad_keys_are_refused_before_anything_is_sealed() {
        for bad in [&[][..], &[4u8; 65][..], &[0u8; 65][..], &[4u8; 64][..]] {
            assert_eq!(
                seal(bad, Direction::ToDevice, BINDING, b"x"),
                Err(SealError::BadKey)
            );
        }
        for bad in [&[][..], &[0u8; 32][..], &[0xffu8; 32][..], &[1u8; 31][..]] {
            assert!(matches!(
                OpeningKey::from_secret(bad),
                Err(SealError::BadKey)
            ));
        }
        let key = OpeningKey::generate().unwrap();
        let again = OpeningKey::from_secret(key.secret()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert!(!format!("{key:?}").contains(&hex(key.secret())));
        let long = "x".repeat(70_000);
        let b = Binding {
            channel: &long,
            challenge_id: "a",
        };
        assert_eq!(
            seal(&key.public_key(), Direction::ToDevice, b, b"x"),
            Err(SealError::Binding)
        );
    }
}
