//! Every record we store is `[version byte] ++ bincode(standard)`, so the format can change
//! later without guessing what old bytes mean.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The record format written by this version.
pub const RECORD_VERSION: u8 = 1;

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
            let (value, used) = bincode::serde::decode_from_slice(rest, bincode::config::standard())
                .map_err(|e| CodecError(e.to_string()))?;
            if used != rest.len() {
                return Err(CodecError(format!("{} trailing bytes", rest.len() - used)));
            }
            Ok(value)
        }
        Some((version, _)) => Err(CodecError(format!("unknown record version {version}"))),
        None => Err(CodecError("empty record".into())),
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("stored record cannot be decoded: {0}")]
pub struct CodecError(pub String);
