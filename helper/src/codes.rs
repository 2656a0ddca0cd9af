//! Recovery codes: 80 random bits shown as `XXXX-XXXX-XXXX-XXXX` in
//! Crockford base32, normalized on input, hashed with Argon2id.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a code, without dashes.
pub const CODE_CHARS: usize = 16;
/// Longest input looked at; anything longer is rejected before hashing.
pub const MAX_INPUT_LEN: usize = 64;
pub const SALT_LEN: usize = 16;
pub const HASH_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("input longer than {MAX_INPUT_LEN} characters")]
    TooLong,
    #[error("a recovery code has {CODE_CHARS} letters and digits")]
    WrongLength,
    #[error("a recovery code contains only letters and digits")]
    BadCharacter,
    #[error("no randomness available: {0}")]
    Random(&'static str),
    #[error("invalid hash parameters")]
    Params,
}

/// Fills `buf` from the OS CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CodeError> {
    getrandom::fill(buf).map_err(|_| CodeError::Random("getrandom failed"))
}

/// A new code in display form, `XXXX-XXXX-XXXX-XXXX`.
pub fn generate_code() -> Result<Zeroizing<String>, CodeError> {
    let mut raw = Zeroizing::new([0u8; 10]);
    random_bytes(&mut *raw)?;
    let mut n = Zeroizing::new(0u128);
    for b in raw.iter() {
        *n = (*n << 8) | u128::from(*b);
    }
    let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS + 3));
    for i in 0..CODE_CHARS {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let shift = 5 * (CODE_CHARS - 1 - i);
        out.push(char::from(ALPHABET[((*n >> shift) & 31) as usize]));
    }
    Ok(out)
}

/// Canonical form of what a user typed: upper case, dashes and spaces
/// removed, I/L read as 1 and O as 0. Over-long input is refused first.
pub fn normalize(input: &str) -> Result<Zeroizing<String>, CodeError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(CodeError::TooLong);
    }
    let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS));
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' | '\t' => continue,
            'I' | 'L' => '1',
            'O' => '0',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return Err(CodeError::BadCharacter),
        };
        out.push(c);
    }
    if out.len() != CODE_CHARS {
        return Err(CodeError::WrongLength);
    }
    Ok(out)
}

/// Argon2id working memory, reused across hashes: allocating ~19 MiB per
/// attempt on whichever blocking thread runs it let the helper's RSS grow
/// with every concurrent login; a fixed set of these keeps it flat.
#[derive(Default)]
pub struct Scratch(Vec<Block>);

impl Drop for Scratch {
    /// The blocks hold Argon2 state derived from a typed code: wiped
    /// before the memory goes back to the allocator.
    fn drop(&mut self) {
        for b in &mut self.0 {
            *b = Block::new();
        }
        std::hint::black_box(&mut self.0);
    }
}

/// Argon2id of a normalized code under the user's salt (allocates its memory).
pub fn hash_code(
    normalized: &str,
    salt: &[u8],
    p: HashParams,
) -> Result<Zeroizing<[u8; HASH_LEN]>, CodeError> {
    hash_code_in(normalized, salt, p, &mut Scratch::default())
}

/// Argon2id of a normalized code under the user's salt, in `scratch`.
pub fn hash_code_in(
    normalized: &str,
    salt: &[u8],
    p: HashParams,
    scratch: &mut Scratch,
) -> Result<Zeroizing<[u8; HASH_LEN]>, CodeError> {
    let params = Params::new(p.memory_kib, p.iterations, p.parallelism, Some(HASH_LEN))
        .map_err(|_| CodeError::Params)?;
    scratch.0.resize(params.block_count(), Block::default());
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    argon
        .hash_password_into_with_memory(normalized.as_bytes(), salt, &mut *out, &mut scratch.0)
        .map_err(|_| CodeError::Params)?;
    Ok(out)
}

/// Index of the stored hash equal to `hash`, comparing against every entry
/// in constant time so timing does not reveal which one (or whether) matched.
pub fn find_match(hash: &[u8; HASH_LEN], stored: &[[u8; HASH_LEN]]) -> Option<usize> {
    let mut found = None;
    for (i, s) in stored.iter().enumerate() {
        let eq: bool = hash.ct_eq(s).into();
        if eq && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn generated_codes_are_well_formed_and_distinct() {
        let a = generate_code().unwrap();
        let b = generate_code().unwrap();
        assert_ne!(*a, *b);
        assert_eq!(a.len(), 19);
        assert_eq!(a.matches('-').count(), 3);
        let n = normalize(&a).unwrap();
        assert_eq!(n.len(), CODE_CHARS);
        assert_eq!(*n, a.replace('-', ""));
    }

    #[test]
    fn normalization_accepts_sloppy_input() {
        let want = "1A2B3C4D5E6F7G80";
        for typed in [
            "1A2B-3C4D-5E6F-7G80",
            "1a2b3c4d5e6f7g80",
            " 1a2b 3c4d 5e6f 7g80 ",
            "La2b-3c4d-5e6f-7g8o",
            "ia2b-3c4d-5e6f-7g8O",
        ] {
            assert_eq!(*normalize(typed).unwrap(), want, "{typed}");
        }
    }

    #[test]
    fn normalization_rejects_bad_input() {
        assert_eq!(
            normalize("1A2B-3C4D-5E6F-7G8U").unwrap_err(),
            CodeError::BadCharacter
        );
        assert_eq!(
            normalize("1A2B-3C4D-5E6F-7G8!").unwrap_err(),
            CodeError::BadCharacter
        );
        assert_eq!(
            normalize("1A2B-3C4D-5E6F-7GÖ0").unwrap_err(),
            CodeError::BadCharacter
        );
        assert_eq!(normalize("1A2B-3C4D").unwrap_err(), CodeError::WrongLength);
        assert_eq!(normalize("").unwrap_err(), CodeError::WrongLength);
        assert_eq!(normalize(&"A".repeat(65)).unwrap_err(), CodeError::TooLong);
        assert_eq!(
            normalize(&"-".repeat(10_000)).unwrap_err(),
            CodeError::TooLong
        );
    }

    #[test]
    fn hash_and_match() {
        let salt = [7u8; SALT_LEN];
        let h1 = hash_code("1A2B3C4D5E6F7G80", &salt, CHEAP).unwrap();
        let h2 = hash_code("1A2B3C4D5E6F7G81", &salt, CHEAP).unwrap();
        assert_ne!(*h1, *h2);
        let other_salt = hash_code("1A2B3C4D5E6F7G80", &[8u8; SALT_LEN], CHEAP).unwrap();
        assert_ne!(*h1, *other_salt);
        let stored = [*h2, *h1];
        assert_eq!(find_match(&h1, &stored), Some(1));
        assert_eq!(find_match(&other_salt, &stored), None);
    }
}
