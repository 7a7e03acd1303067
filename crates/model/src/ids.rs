//! Identifiers. Object ids are 16 bytes — 6 bytes of creation time (ms) then 10 random
//! bytes — shown as a prefix plus 22 base62 digits, so they sort by creation and a list
//! can page through them in order. Ids are made by the proposing node, never at apply.

use std::fmt;
use std::str::FromStr;

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::base62;
use crate::time::Timestamp;

const ID_DIGITS: usize = base62::width_for(16);
/// The longest id: a four-character prefix (`key_`, `usr_`) and its digits.
const MAX_ID_LEN: usize = 4 + ID_DIGITS;

macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name([u8; 16]);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id stamped with `now` (the proposal's time) and 80 random bits.
            pub fn generate(now: Timestamp, rng: &mut impl RngCore) -> $name {
                let mut bytes = [0u8; 16];
                bytes[..6].copy_from_slice(&now.0.to_be_bytes()[2..]);
                rng.fill_bytes(&mut bytes[6..]);
                $name(bytes)
            }

            pub fn from_bytes(bytes: [u8; 16]) -> $name {
                $name(bytes)
            }

            pub fn to_bytes(self) -> [u8; 16] {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Prefix and digits in one piece on the stack: one write, no allocation.
                let mut text = [0u8; MAX_ID_LEN];
                let (prefix, digits) = text.split_at_mut(Self::PREFIX.len());
                prefix.copy_from_slice(Self::PREFIX.as_bytes());
                base62::encode_into(&self.0, &mut digits[..ID_DIGITS]);
                let text = &text[..Self::PREFIX.len() + ID_DIGITS];
                f.write_str(std::str::from_utf8(text).expect("prefix and digits are ASCII"))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(text: &str) -> Result<$name, BadId> {
                let digits = text.strip_prefix(Self::PREFIX).ok_or(BadId)?;
                if digits.len() != ID_DIGITS {
                    return Err(BadId);
                }
                base62::decode::<16>(digits.as_bytes()).map($name).ok_or(BadId)
            }
        }
    };
}

object_id!(
    /// An API key's id (`key_…`). Not secret.
    KeyId,
    "key_"
);
object_id!(
    /// A user's id (`usr_…`).
    UserId,
    "usr_"
);
object_id!(
    /// A service account's id (`sa_…`).
    ServiceAccountId,
    "sa_"
);

object_id!(
    /// A webhook's id (`whk_…`). Not secret.
    WebhookId,
    "whk_"
);

/// A string that is not an id of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id")]
pub struct BadId;

const CLUSTER_ACCOUNT: &str = "_cluster";

/// An account (tenant) is named by a short slug: `default`, `acme-prod`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountId(String);

impl AccountId {
    /// 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter.
    pub fn new(name: &str) -> Result<AccountId, BadId> {
        let ok = (1..=63).contains(&name.len())
            && name.as_bytes()[0].is_ascii_lowercase()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(AccountId(name.to_string()))
        } else {
            Err(BadId)
        }
    }

    pub fn default_account() -> AccountId {
        AccountId("default".to_string())
    }

    /// The cluster's own chain (signers and checkpoints). No account can take the name: a
    /// slug starts with a letter.
    pub fn cluster() -> AccountId {
        AccountId(CLUSTER_ACCOUNT.to_string())
    }

    pub fn is_cluster(&self) -> bool {
        self.0 == CLUSTER_ACCOUNT
    }

    /// An account's slug, or the cluster chain's reserved name (as read back from exports).
    pub fn parse(name: &str) -> Result<AccountId, BadId> {
        if name == CLUSTER_ACCOUNT {
            Ok(AccountId::cluster())
        } else {
            AccountId::new(name)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let a = KeyId::generate(Timestamp(1_000), &mut rng);
        let b = KeyId::generate(Timestamp(2_000), &mut rng);
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<KeyId>(), Ok(a));
        assert!(a.to_string().replace("key_", "usr_").parse::<UserId>().is_ok());
        assert_eq!("key_short".parse::<KeyId>(), Err(BadId));
        assert_eq!(a.to_string().parse::<UserId>(), Err(BadId));
    }

    #[test]
    fn account_names() {
        assert!(AccountId::new("default").is_ok());
        assert!(AccountId::new("acme-2").is_ok());
        for bad in ["", "Default", "2x", "a b", &"a".repeat(64)] {
            assert_eq!(AccountId::new(bad), Err(BadId), "{bad:?}");
        }
    }
}
