//! Lower-case hex for hashes, keys and signatures in exports and the API.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Each byte's value as a lower-case hex digit, or 0xff: a table, since exports and their
/// verification read four hashes per line.
const VALUE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        table[DIGITS[i] as usize] = i as u8;
        i += 1;
    }
    table
};

pub fn encode(bytes: &[u8]) -> String {
    let digits = bytes.iter().flat_map(|&b| digit_pair(b)).collect();
    String::from_utf8(digits).expect("hex digits are ASCII")
}

/// The 64 digits of 32 bytes, on the stack (hashes written into export lines).
pub fn digits32(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&digit_pair(b));
    }
    out
}

fn digit_pair(b: u8) -> [u8; 2] {
    [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0f)]]
}

/// Exactly `2 * N` lower-case hex digits; anything else is `None` (one spelling per value,
/// so a canonical-form check stays meaningful).
pub fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (VALUE[usize::from(pair[0])], VALUE[usize::from(pair[1])]);
        if (high | low) > 15 {
            return None;
        }
        *byte = (high << 4) | low;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_other_spellings() {
        let bytes = [0x00, 0x9f, 0xa0, 0xff];
        assert_eq!(super::encode(&bytes), "009fa0ff");
        let wide: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(super::digits32(&wide).to_vec(), super::encode(&wide).into_bytes());
        assert_eq!(super::decode::<4>("009fa0ff"), Some(bytes));
        for bad in ["009FA0FF", "009fa0f", "009fa0ffe", "009fa0fg", ""] {
            assert_eq!(super::decode::<4>(bad), None, "{bad}");
        }
    }
}
