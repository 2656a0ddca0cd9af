//! What travels inside protocol v2's sealed envelopes (`sealed`): the
//! signed challenge (host to device) and the signed answer (device to
//! host). Plain byte layouts with no cryptography, so they parse the same
//! everywhere and can be fuzzed on their own.
//!
//! - challenge: the encoded challenge, then the host's 64-byte signature.
//! - answer: u16 length and the encoded approval, the device's 64-byte
//!   signature, then an optional WebAuthn assertion: u16 length and
//!   authenticatorData, u16 length and clientDataJSON, u16 length and the
//!   DER signature. Nothing may follow.

use crate::signed::SIGNATURE_LEN;

/// Longest piece of a WebAuthn assertion accepted, in bytes.
pub const MAX_ASSERTION_PART_LEN: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("truncated")]
    Truncated,
    #[error("trailing bytes")]
    Trailing,
    #[error("{0} is too long")]
    TooLong(&'static str),
}

/// A challenge and the host's signature over it.
pub fn challenge_plaintext(encoded: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    [encoded, signature.as_slice()].concat()
}

/// The encoded challenge and the host's signature.
pub fn split_challenge(plain: &[u8]) -> Result<(&[u8], &[u8; SIGNATURE_LEN]), EnvelopeError> {
    let at = plain
        .len()
        .checked_sub(SIGNATURE_LEN)
        .ok_or(EnvelopeError::Truncated)?;
    let (encoded, signature) = plain.split_at(at);
    let signature = signature.try_into().map_err(|_| EnvelopeError::Truncated)?;
    Ok((encoded, signature))
}

/// A WebAuthn assertion as `navigator.credentials.get` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub authenticator_data: Vec<u8>,
    pub client_data_json: Vec<u8>,
    /// ASN.1 DER ECDSA signature.
    pub signature: Vec<u8>,
}

/// A device's answer as sealed to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The encoded approval (`signed::Approval`).
    pub approval: Vec<u8>,
    pub signature: [u8; SIGNATURE_LEN],
    pub assertion: Option<Assertion>,
}

impl Answer {
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        let mut out = Vec::with_capacity(self.approval.len() + 80);
        put(&mut out, &self.approval, "approval", usize::from(u16::MAX))?;
        out.extend_from_slice(&self.signature);
        if let Some(a) = &self.assertion {
            let max = MAX_ASSERTION_PART_LEN;
            put(&mut out, &a.authenticator_data, "authenticatorData", max)?;
            put(&mut out, &a.client_data_json, "clientDataJSON", max)?;
            put(&mut out, &a.signature, "assertion signature", max)?;
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Answer, EnvelopeError> {
        let mut r = Reader(bytes);
        let approval = r.prefixed("approval", usize::from(u16::MAX))?.to_vec();
        let signature = r
            .take(SIGNATURE_LEN)?
            .try_into()
            .map_err(|_| EnvelopeError::Truncated)?;
        let assertion = if r.0.is_empty() {
            None
        } else {
            let max = MAX_ASSERTION_PART_LEN;
            Some(Assertion {
                authenticator_data: r.prefixed("authenticatorData", max)?.to_vec(),
                client_data_json: r.prefixed("clientDataJSON", max)?.to_vec(),
                signature: r.prefixed("assertion signature", max)?.to_vec(),
            })
        };
        if !r.0.is_empty() {
            return Err(EnvelopeError::Trailing);
        }
        Ok(Answer {
            approval,
            signature,
            assertion,
        })
    }
}

fn put(
    out: &mut Vec<u8>,
    part: &[u8],
    name: &'static str,
    max: usize,
) -> Result<(), EnvelopeError> {
    let len = u16::try_from(part.len())
        .ok()
        .filter(|&n| usize::from(n) <= max)
        .ok_or(EnvelopeError::TooLong(name))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part);
    Ok(())
}

/// Reads u16-length-prefixed parts off the front of a byte string.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.0.len() < n {
            return Err(EnvelopeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn prefixed(
        &mut self,
        name: &'static str,
        max: usize,
    ) -> Result<&'a [u8], EnvelopeError> {
        let len = self.take(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len > max {
            return Err(EnvelopeError::TooLong(name));
        }
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(assertion: bool) -> Answer {
        Answer {
            approval: vec![1, 2, 3, 4],
            signature: [9; 64],
            assertion: assertion.then(|| Assertion {
                authenticator_data: vec![5; 37],
                client_data_json: br#"{"type":"webauthn.get"}"#.to_vec(),
                signature: vec![0x30, 0x44, 7],
            }),
        }
    }

    #[test]
    fn answers_round_trip_with_and_without_an_assertion() {
        for with in [false, true] {
            let a = answer(with);
            let bytes = a.encode().unwrap();
            assert_eq!(Answer::decode(&bytes).unwrap(), a);
        }
        let bytes = answer(false).encode().unwrap();
        assert_eq!(&bytes[..6], &[0, 4, 1, 2, 3, 4]);
        assert_eq!(bytes.len(), 2 + 4 + 64);
    }

    #[test]
    fn garbage_truncation_trailing_and_oversize_are_refused() {
        let full = answer(true).encode().unwrap();
        for cut in 0..full.len() {
            // Cut right after the signature, it is a valid answer without
            // an assertion; anywhere else it is truncated.
            if cut == 2 + 4 + 64 {
                continue;
            }
            assert_eq!(
                Answer::decode(&full[..cut]),
                Err(EnvelopeError::Truncated),
                "{cut}"
            );
        }
        let mut long = full.clone();
        long.push(0);
        assert_eq!(Answer::decode(&long), Err(EnvelopeError::Trailing));
        let mut huge = answer(false).encode().unwrap();
        huge.extend_from_slice(&[0x04, 0x01]);
        huge.extend_from_slice(&[0; 1025]);
        assert_eq!(
            Answer::decode(&huge),
            Err(EnvelopeError::TooLong("authenticatorData"))
        );
        let mut a = answer(true);
        a.assertion.as_mut().unwrap().client_data_json = vec![b'x'; 1025];
        assert_eq!(a.encode(), Err(EnvelopeError::TooLong("clientDataJSON")));
        assert_eq!(Answer::decode(&[0xff; 3]), Err(EnvelopeError::Truncated));
    }

    #[test]
    fn a_challenge_splits_off_its_signature() {
        let plain = challenge_plaintext(b"challenge", &[7; 64]);
        let (c, s) = split_challenge(&plain).unwrap();
        assert_eq!((c, s), (&b"challenge"[..], &[7; 64]));
        assert_eq!(split_challenge(&[1; 63]), Err(EnvelopeError::Truncated));
        assert_eq!(split_challenge(&[1; 64]).unwrap().0, b"");
    }
}
