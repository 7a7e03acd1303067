//! Fixed-width base62 over big-endian byte strings.
//!
//! The alphabet is in ASCII order (`0-9A-Za-z`), so for a fixed width the text order equals
//! the numeric order: time-prefixed ids sort by creation, and a token body can be range-checked
//! with a plain string comparison instead of a big-number decode.

pub(crate) const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Number of base62 digits needed for `n` bytes: ceil(8n / log2 62).
pub(crate) const fn width_for(bytes: usize) -> usize {
    // log2(62) ≈ 5.9542; 59542 / 10000 keeps this a const fn without floats.
    (bytes * 8 * 10000).div_ceil(59542)
}

#[inline]
pub(crate) fn digit_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

/// Encodes `bytes` (big-endian) as exactly `width` base62 digits.
pub(crate) fn encode(bytes: &[u8], width: usize) -> String {
    let mut digits = vec![b'0'; width];
    encode_into(bytes, &mut digits);
    String::from_utf8(digits).expect("alphabet is ASCII")
}

/// Writes `bytes` (big-endian) as base62 digits filling all of `digits`.
pub(crate) fn encode_into(bytes: &[u8], digits: &mut [u8]) {
    // Ids (16 bytes) fit a u128. A u128 division is a slow library call, so the number is cut
    // into base-62¹⁰ chunks that fit a u64 (three u128 divisions for an id instead of 44), and
    // each chunk gives its ten digits by u64 arithmetic.
    if bytes.len() <= 16 {
        const CHUNK: u128 = 62u128.pow(10);
        let mut number = bytes.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
        let (mut chunk, mut left_in_chunk) = (0u64, 0);
        for slot in digits.iter_mut().rev() {
            if left_in_chunk == 0 {
                chunk = (number % CHUNK) as u64;
                number /= CHUNK;
                left_in_chunk = 10;
            }
            *slot = ALPHABET[(chunk % 62) as usize];
            chunk /= 62;
            left_in_chunk -= 1;
        }
        debug_assert!(number == 0 && chunk == 0, "width too small");
        return;
    }
    let mut number = bytes.to_vec();
    for slot in digits.iter_mut().rev() {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    debug_assert!(number.iter().all(|&b| b == 0), "width too small");
}

/// Decodes base62 digits into exactly `N` big-endian bytes; `None` on a bad digit or overflow.
pub(crate) fn decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    // Ids (16 bytes): accumulate in a u128, overflow-checked, instead of byte-wise multiplying.
    if N <= 16 {
        let mut number: u128 = 0;
        for &c in text {
            number = number.checked_mul(62)?.checked_add(u128::from(digit_value(c)?))?;
        }
        if N < 16 && number >> (8 * N) != 0 {
            return None;
        }
        out.copy_from_slice(&number.to_be_bytes()[16 - N..]);
        return Some(out);
    }
    for &c in text {
        let mut carry = u32::from(digit_value(c)?);
        for byte in out.iter_mut().rev() {
            let acc = u32::from(*byte) * 62 + carry;
            *byte = acc as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte-wise long division, the reference for the u128 paths.
    fn long_division(bytes: &[u8], width: usize) -> String {
        let mut number = bytes.to_vec();
        let mut digits = vec![b'0'; width];
        for slot in digits.iter_mut().rev() {
            let mut remainder: u32 = 0;
            for byte in number.iter_mut() {
                let acc = (remainder << 8) | u32::from(*byte);
                *byte = (acc / 62) as u8;
                remainder = acc % 62;
            }
            *slot = ALPHABET[remainder as usize];
        }
        String::from_utf8(digits).unwrap()
    }

    #[test]
    fn widths() {
        assert_eq!(width_for(32), 43);
        assert_eq!(width_for(16), 22);
        assert_eq!(width_for(4), 6);
    }

    #[test]
    fn extremes() {
        assert_eq!(encode(&[0; 4], 6), "000000");
        assert_eq!(decode::<4>(encode(&[0xff; 4], 6).as_bytes()), Some([0xff; 4]));
        // One past the largest 32-byte number does not fit.
        let max = encode(&[0xff; 32], 43);
        let mut over = max.into_bytes();
        *over.last_mut().unwrap() += 1;
        assert_eq!(decode::<32>(&over), None);
        assert_eq!(decode::<4>(b"00-000"), None);
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let text = encode(&bytes, 43);
            prop_assert_eq!(text.len(), 43);
            prop_assert_eq!(decode::<32>(text.as_bytes()), Some(bytes));
        }

        #[test]
        fn the_u128_path_matches_long_division(bytes in proptest::array::uniform16(any::<u8>())) {
            let text = encode(&bytes, 22);
            prop_assert_eq!(decode::<16>(text.as_bytes()), Some(bytes));
        }

        #[test]
        fn short_paths_match_long_division(bytes in proptest::array::uniform16(any::<u8>()), n in 1usize..=16) {
            let bytes = &bytes[16 - n..];
            let width = width_for(n);
            let text = encode(bytes, width);
            prop_assert_eq!(&text, &long_division(bytes, width));
            let mut padded = [0u8; 32];
            padded[32 - n..].copy_from_slice(bytes);
            prop_assert_eq!(decode::<32>(text.as_bytes()), Some(padded));
            prop_assert_eq!(&decode::<16>(text.as_bytes()).unwrap()[16 - n..], bytes);
        }

        #[test]
        fn short_decode_refuses_what_long_decode_refuses(text in "[0-9A-Za-z]{20,24}") {
            let long = decode::<32>(text.as_bytes());
            let fits = long.filter(|b| b[..16].iter().all(|&x| x == 0)).map(|b| <[u8; 16]>::try_from(&b[16..]).unwrap());
            prop_assert_eq!(decode::<16>(text.as_bytes()), fits);
        }

        #[test]
        fn text_order_is_numeric_order(a in any::<u128>(), b in any::<u128>()) {
            let ta = encode(&a.to_be_bytes(), 22);
            let tb = encode(&b.to_be_bytes(), 22);
            prop_assert_eq!(a.cmp(&b), ta.cmp(&tb));
        }
    }
}
