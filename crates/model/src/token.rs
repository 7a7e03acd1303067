//! API key tokens: `klk_` + 43 base62 digits of 32 random bytes + a 6-digit base62 CRC32.
//! Enrollment codes have the same form with their own prefix, `kle_`, so neither can be
//! mistaken for the other (docs/secret-scanning.md documents the format for scanners).
//!
//! The checksum lets [`parse`] reject typos and foreign strings (`malformed`) without any
//! lookup. Only the SHA3-256 digest of the whole token is ever stored; the token itself lives
//! in the create answer and nowhere else. [`SecretToken`] has no `Display` and a redacting
//! `Debug`, so it cannot end up in a log line by accident.

use std::fmt;
use std::sync::OnceLock;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha3::{Digest as _, Sha3_256};

use crate::base62;

/// Every keyledger token starts with this.
pub const PREFIX: &str = "klk_";
/// Every one-time enrollment code starts with this (same length as a key).
pub const ENROLLMENT_PREFIX: &str = "kle_";
const BODY_LEN: usize = base62::width_for(32);
const CHECK_LEN: usize = base62::width_for(4);
/// Length of a well-formed token in bytes (ASCII).
pub const TOKEN_LEN: usize = PREFIX.len() + BODY_LEN + CHECK_LEN;
/// Length of the non-secret hint shown in listings.
pub const HINT_LEN: usize = 4;

/// A freshly generated secret. Shown once to its owner, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// The token text, for the one answer that reveals it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }

    pub fn hint(&self) -> String {
        hint_of(&self.0)
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretToken(…{})", self.hint())
    }
}

/// SHA3-256 of a whole token: what the verification index is keyed by.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(token: &str) -> KeyDigest {
        KeyDigest(Sha3_256::digest(token.as_bytes()).into())
    }

    /// The value the hash chain and exports carry instead of the digest, so an export can be
    /// verified without holding anything that would let someone test guesses of a secret.
    pub fn commitment(&self) -> [u8; 32] {
        let mut hasher = Sha3_256::new();
        hasher.update(b"keyledger-commit");
        hasher.update(self.0);
        hasher.finalize().into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to tell digests apart in a test failure, not enough to matter.
        write!(f, "KeyDigest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// Why a string is not a keyledger token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the key does not start with `{PREFIX}`")]
    Prefix,
    #[error("the key has the wrong length")]
    Length,
    #[error("the key contains a character outside base62")]
    Alphabet,
    #[error("the key's checksum does not match")]
    Checksum,
}

/// Generates a new token from a cryptographic generator (ChaCha20 seeded from the OS).
pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> SecretToken {
    generate_with(PREFIX, rng)
}

/// Generates a new one-time enrollment code (`kle_…`); only its digest is ever stored.
pub fn generate_enrollment_code<R: RngCore + CryptoRng>(rng: &mut R) -> SecretToken {
    generate_with(ENROLLMENT_PREFIX, rng)
}

fn generate_with<R: RngCore + CryptoRng>(prefix: &str, rng: &mut R) -> SecretToken {
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    let body = base62::encode(&random, BODY_LEN);
    let check = base62::encode(&crc32fast::hash(body.as_bytes()).to_be_bytes(), CHECK_LEN);
    SecretToken(format!("{prefix}{body}{check}"))
}

/// Checks a presented token's form. Cheap: no allocation, no big-number arithmetic.
pub fn parse(token: &str) -> Result<(), Malformed> {
    parse_with(PREFIX, token)
}

/// Checks a presented enrollment code's form, as [`parse`] does a key's.
pub fn parse_enrollment_code(code: &str) -> Result<(), Malformed> {
    parse_with(ENROLLMENT_PREFIX, code)
}

#[inline]
fn parse_with(prefix: &str, token: &str) -> Result<(), Malformed> {
    let bytes = token.as_bytes();
    if !bytes.starts_with(prefix.as_bytes()) {
        return Err(Malformed::Prefix);
    }
    if bytes.len() != TOKEN_LEN {
        return Err(Malformed::Length);
    }
    let body = &bytes[PREFIX.len()..PREFIX.len() + BODY_LEN];
    let check = &bytes[PREFIX.len() + BODY_LEN..];
    if !body.iter().chain(check).all(|&c| base62::digit_value(c).is_some()) {
        return Err(Malformed::Alphabet);
    }
    // Fixed width and an alphabet in ASCII order: text order is numeric order.
    if body > max_body() {
        return Err(Malformed::Alphabet);
    }
    let expected = base62::decode::<4>(check).map(u32::from_be_bytes);
    if expected != Some(crc32fast::hash(body)) {
        return Err(Malformed::Checksum);
    }
    Ok(())
}

fn max_body() -> &'static [u8] {
    static MAX: OnceLock<String> = OnceLock::new();
    MAX.get_or_init(|| base62::encode(&[0xff; 32], BODY_LEN)).as_bytes()
}

/// The last 4 characters of a token: enough for a person to tell keys apart.
pub fn hint_of(token: &str) -> String {
    token[token.len().saturating_sub(HINT_LEN)..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn token(seed: u64) -> SecretToken {
        generate(&mut ChaCha20Rng::seed_from_u64(seed))
    }

    #[test]
    fn generated_tokens_parse() {
        for seed in 0..200 {
            let t = token(seed);
            assert_eq!(t.expose().len(), TOKEN_LEN);
            assert_eq!(parse(t.expose()), Ok(()), "{t:?}");
        }
    }

    #[test]
    fn rejects_prefix_length_alphabet() {
        let t = token(1).expose().to_string();
        assert_eq!(parse(&t.replacen("klk_", "klx_", 1)), Err(Malformed::Prefix));
        assert_eq!(parse(&t[..t.len() - 1]), Err(Malformed::Length));
        assert_eq!(parse(&format!("{t}0")), Err(Malformed::Length));
        let mut bad = t.clone().into_bytes();
        bad[10] = b'-';
        assert_eq!(parse(std::str::from_utf8(&bad).unwrap()), Err(Malformed::Alphabet));
        assert_eq!(parse(""), Err(Malformed::Prefix));
        assert_eq!(parse("klk_é"), Err(Malformed::Length));
        let over = format!("{PREFIX}{}", "z".repeat(BODY_LEN + CHECK_LEN));
        assert_eq!(parse(&over), Err(Malformed::Alphabet));
    }

    #[test]
    fn enrollment_codes_have_their_own_prefix() {
        let code = generate_enrollment_code(&mut ChaCha20Rng::seed_from_u64(5));
        assert!(code.expose().starts_with(ENROLLMENT_PREFIX));
        assert_eq!(code.expose().len(), TOKEN_LEN);
        assert_eq!(parse_enrollment_code(code.expose()), Ok(()));
        // Neither kind passes for the other.
        assert_eq!(parse(code.expose()), Err(Malformed::Prefix));
        assert_eq!(parse_enrollment_code(token(5).expose()), Err(Malformed::Prefix));
        let mut changed = code.expose().to_string().into_bytes();
        changed[20] = if changed[20] == b'a' { b'b' } else { b'a' };
        assert!(parse_enrollment_code(std::str::from_utf8(&changed).unwrap()).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = token(7);
        let shown = format!("{t:?}");
        assert!(!shown.contains(&t.expose()[4..20]));
        assert!(shown.ends_with(&format!("{})", t.hint())));
    }

    #[test]
    fn digest_and_commitment_differ() {
        let d = token(3).digest();
        assert_ne!(d.0, d.commitment());
        assert_eq!(d, KeyDigest::of(token(3).expose()));
    }

    /// What docs/secret-scanning.md tells scanners: its regular expression, its checksum
    /// recipe (written out here as the document does, not through `parse`) and its example.
    const DOC: &str = include_str!("../../../docs/secret-scanning.md");
    const DOC_EXAMPLE: &str = "klk_8HQeGwpLg2SoQYZ0o9DGBAzH3ViEcaTwLHVo4GKTtT44FYgEI";

    fn documented_check(pattern: &regex::Regex, token: &str) -> bool {
        let found = pattern.find(token).is_some_and(|m| m.as_str() == token);
        let recipe = || {
            let (body, check) = (&token[4..47], &token[47..]);
            let alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            let value = check.chars().try_fold(0u64, |v, c| alphabet.find(c).map(|d| v * 62 + d as u64));
            value == Some(u64::from(crc32fast::hash(body.as_bytes())))
        };
        found && recipe()
    }

    #[test]
    fn the_documented_regex_and_checksum_recipe() {
        let keys = regex::Regex::new(r"\bklk_[0-9A-Za-z]{49}\b").unwrap();
        let codes = regex::Regex::new(r"\bkle_[0-9A-Za-z]{49}\b").unwrap();
        for text in [r"\bklk_[0-9A-Za-z]{49}\b", r"\bkle_[0-9A-Za-z]{49}\b", DOC_EXAMPLE, "3894441854", "0xe820777e"] {
            assert!(DOC.contains(text), "the document shows {text}");
        }
        assert_eq!(token(2026).expose(), DOC_EXAMPLE, "the example is a generated token");
        assert_eq!(parse(DOC_EXAMPLE), Ok(()));
        assert_eq!(crc32fast::hash(&DOC_EXAMPLE.as_bytes()[4..47]), 0xe820777e);
        let code = generate_enrollment_code(&mut ChaCha20Rng::seed_from_u64(2026));
        for (pattern, t) in
            [(&keys, DOC_EXAMPLE.to_string()), (&keys, token(9).expose().into()), (&codes, code.expose().into())]
        {
            assert!(documented_check(pattern, &t), "{t}");
            // In running text too: a scanner finds it between other words.
            assert_eq!(pattern.find(&format!("key = \"{t}\";")).map(|m| m.as_str()), Some(t.as_str()));
            for pos in 4..t.len() {
                for replacement in [b'0', b'a', b'Z'] {
                    let mut changed = t.clone().into_bytes();
                    if changed[pos] == replacement {
                        continue;
                    }
                    changed[pos] = replacement;
                    let changed = String::from_utf8(changed).unwrap();
                    assert!(!documented_check(pattern, &changed), "{changed} passes the documented check");
                }
            }
        }
        assert!(!keys.is_match(code.expose()), "a code is not a key");
    }

    proptest! {
        /// Any single-character change of a valid token is caught by the form check
        /// (CRC32 detects every single-symbol error in the body).
        #[test]
        fn one_character_changed_is_malformed(seed in any::<u64>(), pos in 4usize..TOKEN_LEN, c in 0usize..62) {
            let t = token(seed).expose().to_string();
            let replacement = base62::ALPHABET[c];
            prop_assume!(t.as_bytes()[pos] != replacement);
            let mut bytes = t.into_bytes();
            bytes[pos] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(parse(&changed).is_err());
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,80}") {
            let _ = parse(&s);
        }
    }
}
