//! Every record we store is `[version byte] ++ bincode(standard)`, so the format can change
//! later without guessing what old bytes mean.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The record format written by this version.
pub const RECORD_VERSION: u8 = 1;

/// The most one decode may claim, in bincode's count (a string's or a byte vector's length, 8
/// bytes per integer). bincode allocates a string or byte vector at the length the input claims
/// before reading it, so without a limit five bytes from a peer could ask for 4 GiB (found by
/// `scripts/fuzz`). Four times the largest frame or request body a node accepts (64 MiB).
const DECODE_LIMIT: usize = 256 * 1024 * 1024;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Appends the encoded `value` to `out` (for framing without a second copy).
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.push(RECORD_VERSION);
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
        .map_err(|e| CodecError(e.to_string()))?;
    Ok(())
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => {
            let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
            let (value, used) =
                bincode::serde::decode_from_slice(rest, config).map_err(|e| CodecError(e.to_string()))?;
            if used != rest.len() {
                return Err(CodecError(format!("{} trailing bytes", rest.len() - used)));
            }
            Ok(value)
        }
        Some((version, _)) => Err(CodecError(format!("unknown record version {version}"))),
        None => Err(CodecError("empty record".into())),
    }
}

/// Decodes only the leading fields of a record: `T` is a struct whose fields are the first
/// fields of the stored one, in order (bincode writes a struct as its fields one after the
/// other), and the bytes after them are not read.
pub fn decode_head<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => {
            let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
            let (value, _) = bincode::serde::decode_from_slice(rest, config).map_err(|e| CodecError(e.to_string()))?;
            Ok(value)
        }
        Some((version, _)) => Err(CodecError(format!("unknown record version {version}"))),
        None => Err(CodecError("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_claiming_more_than_the_limit_is_refused_before_anything_is_allocated() {
        // Version byte, then a varint length of u32::MAX (0xFC + 4 bytes LE) and no bytes.
        let record = [RECORD_VERSION, 0xFC, 0xFF, 0xFF, 0xFF, 0xFF];
        let error = decode::<String>(&record).expect_err("a 4 GiB string from six bytes");
        assert!(error.0.contains("LimitExceeded"), "{error}");
        // serde reads a `Vec` element by element, so it ends with the input.
        decode::<Vec<u8>>(&record).expect_err("a 4 GiB vector from six bytes");
    }

    #[test]
    fn records_round_trip_under_the_limit() {
        let text = "x".repeat(1 << 20);
        assert_eq!(decode::<String>(&encode(&text).unwrap()).unwrap(), text);
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("stored record cannot be decoded: {0}")]
pub struct CodecError(pub String);
