//! Lower-case hex for hashes, keys and signatures in exports and the API.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Exactly `2 * N` lower-case hex digits; anything else is `None` (one spelling per value,
/// so a canonical-form check stays meaningful).
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_other_spellings() {
        let bytes = [0x00, 0x9f, 0xa0, 0xff];
        assert_eq!(super::encode(&bytes), "009fa0ff");
        assert_eq!(super::decode::<4>("009fa0ff"), Some(bytes));
        for bad in ["009FA0FF", "009fa0f", "009fa0ffe", "009fa0fg", ""] {
            assert_eq!(super::decode::<4>(bad), None, "{bad}");
        }
    }
}
