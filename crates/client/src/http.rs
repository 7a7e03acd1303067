//! Small pure helpers: the base address, path segments, and the headers answers carry.

use crate::ClientError;

/// Normalizes a server address: surrounding whitespace and trailing slashes go, and a bare
/// `host:port` gets `http://` in front. Only `http` and `https` with a host are accepted.
pub(crate) fn normalize_address(address: &str) -> Result<String, ClientError> {
    let trimmed = address.trim();
    if trimmed.trim_end_matches('/').is_empty() {
        return Err(ClientError::Transport("the server address is empty".into()));
    }
    let full = if trimmed.contains("://") {
        trimmed.trim_end_matches('/').to_string()
    } else {
        format!("http://{}", trimmed.trim_end_matches('/'))
    };
    let invalid = |why: &str| ClientError::Transport(format!("invalid server address {full:?}: {why}"));
    let url = reqwest::Url::parse(&full).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not carry a query or a fragment"));
    }
    Ok(full)
}

/// Percent-encodes one path segment, keeping only RFC 3986 unreserved characters as they are.
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Whether an id can stand as a path segment: URL parsers fold `.` and `..` (even
/// percent-encoded) into the path, and an empty one changes the route.
pub(crate) fn usable_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".."
}

/// The value of `X-Keyledger-Index`: a plain decimal ledger position.
pub(crate) fn parse_index(value: Option<&[u8]>) -> Result<u64, ClientError> {
    let raw = value
        .ok_or_else(|| ClientError::Decode(format!("the answer has no {} header", keyledger_wire::INDEX_HEADER)))?;
    std::str::from_utf8(raw).ok().and_then(|text| text.trim().parse::<u64>().ok()).ok_or_else(|| {
        ClientError::Decode(format!(
            "the {} header is not a number: {:?}",
            keyledger_wire::INDEX_HEADER,
            String::from_utf8_lossy(raw)
        ))
    })
}

/// The value of `ETag`: a revision number, quoted (`"42"`), possibly weak (`W/"42"`).
pub(crate) fn parse_etag(value: Option<&[u8]>) -> Result<u64, ClientError> {
    let raw = value.ok_or_else(|| ClientError::Decode("the answer has no ETag header".into()))?;
    std::str::from_utf8(raw)
        .ok()
        .map(|text| {
            let text = text.trim();
            text.strip_prefix("W/").unwrap_or(text).trim_matches('"')
        })
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| {
            ClientError::Decode(format!("the ETag header is not a revision number: {:?}", String::from_utf8_lossy(raw)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized() {
        let ok = |a: &str| normalize_address(a).unwrap();
        assert_eq!(ok("http://127.0.0.1:7700"), "http://127.0.0.1:7700");
        assert_eq!(ok("http://127.0.0.1:7700/"), "http://127.0.0.1:7700");
        assert_eq!(ok(" http://127.0.0.1:7700// "), "http://127.0.0.1:7700");
        assert_eq!(ok("127.0.0.1:7700"), "http://127.0.0.1:7700");
        assert_eq!(ok("localhost:7700"), "http://localhost:7700");
        assert_eq!(ok("https://keys.example/base/"), "https://keys.example/base");
    }

    #[test]
    fn bad_addresses_are_refused() {
        for bad in ["", "/", "ftp://host", "http://", "http://h:7700/?x=1", "http://h:99999"] {
            let err = normalize_address(bad).unwrap_err();
            assert!(matches!(err, ClientError::Transport(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("key_01HX-a.b~c"), "key_01HX-a.b~c");
        assert_eq!(encode_segment("a/b c?d#e%"), "a%2Fb%20c%3Fd%23e%25");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert!(!usable_segment(""));
        assert!(!usable_segment(".."));
        assert!(usable_segment("..."));
    }

    #[test]
    fn index_header() {
        assert_eq!(parse_index(Some(b"42")).unwrap(), 42);
        assert_eq!(parse_index(Some(b" 7 ")).unwrap(), 7);
        assert!(matches!(parse_index(None), Err(ClientError::Decode(_))));
        assert!(matches!(parse_index(Some(b"-1")), Err(ClientError::Decode(_))));
        assert!(matches!(parse_index(Some(b"x")), Err(ClientError::Decode(_))));
    }

    #[test]
    fn etag_header() {
        assert_eq!(parse_etag(Some(b"\"12\"")).unwrap(), 12);
        assert_eq!(parse_etag(Some(b"W/\"12\"")).unwrap(), 12);
        assert_eq!(parse_etag(Some(b"12")).unwrap(), 12);
        assert!(matches!(parse_etag(None), Err(ClientError::Decode(_))));
        assert!(matches!(parse_etag(Some(b"\"abc\"")), Err(ClientError::Decode(_))));
    }
}
