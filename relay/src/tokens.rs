//! Bearer tokens: the relay keeps only their SHA-256 hashes and compares
//! in constant time.

use crate::serve;
use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

pub type TokenHash = [u8; 32];

pub(crate) fn hash_token(token: &str) -> TokenHash {
    let mut h = [0u8; 32];
    h.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    h
}

/// Whether `presented` is the token `expected` hashes; a match also marks
/// the request's connection as authenticated (see [`serve`]).
pub(crate) fn token_matches(expected: &TokenHash, presented: &str) -> bool {
    let ok: bool = expected.ct_eq(&hash_token(presented)).into();
    if ok {
        serve::authenticated();
    }
    ok
}
