//! The hint printed under an error a user can fix: a missing or refused API key, no server at
//! the address, a certificate not trusted. It says what to do next, naming the real flags and
//! variables.

use std::fmt;

use keyledger_client::ClientError;

/// Where a failed command went and whether it had an API key: what its hint is made from.
pub(super) struct HintContext {
    pub(super) addresses: Vec<String>,
    pub(super) has_key: bool,
}

/// What to do next, shown under an error (see `cli::report`).
#[derive(Debug)]
pub(super) struct Hint(String);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hint for a client error a user can fix: a missing or refused key, no server at the
/// address, a certificate not trusted.
pub(super) fn hint_for(err: &anyhow::Error, context: &HintContext) -> Option<Hint> {
    let hint = match err.downcast_ref::<ClientError>()? {
        ClientError::Api { status: 401, .. } if !context.has_key => "no API key was given: set KEYLEDGER_API_KEY, \
             pass --api-key, or run `keyledger login` once"
            .to_string(),
        ClientError::Api { status: 401, .. } => "the API key was refused (revoked, expired or mistyped): run \
             `keyledger login` or set KEYLEDGER_API_KEY"
            .to_string(),
        ClientError::Transport(why) if why.contains("connect") || why.contains("dns error") => format!(
            "is `keyledger serve` running at {}? set --address or KEYLEDGER_ADDRESS",
            context.addresses.join(", ")
        ),
        ClientError::Tls(why) if !why.contains("--cacert") && !why.contains("http://") => {
            "to trust a private CA, pass --cacert FILE or set KEYLEDGER_CACERT".to_string()
        }
        _ => return None,
    };
    Some(Hint(hint))
}

#[cfg(test)]
mod tests {
    use super::super::{exit_code_for, report, EXIT_API_ERROR};
    use super::*;
    use keyledger_wire::ErrorDetail;

    fn api_error() -> ClientError {
        ClientError::Api {
            status: 404,
            error: ErrorDetail { code: "not_found".into(), message: "key not found".into(), request_id: None },
        }
    }

    #[test]
    fn hints_follow_the_error_and_keep_its_exit_code() {
        let unauthenticated = || {
            anyhow::Error::from(ClientError::Api {
                status: 401,
                error: ErrorDetail { code: "unauthenticated".into(), message: "no valid key".into(), request_id: None },
            })
        };
        let hinted = |err: anyhow::Error, has_key: bool| {
            let context = HintContext { addresses: vec!["http://n1:7700".into(), "http://n2:7700".into()], has_key };
            let hint = hint_for(&err, &context).expect("a hint");
            err.context(hint)
        };
        let err = hinted(unauthenticated(), false);
        assert_eq!(exit_code_for(&err), EXIT_API_ERROR);
        let text = report(&err).unwrap();
        assert!(text.starts_with("no valid key (unauthenticated)\nhint: no API key was given"), "{text}");
        assert!(report(&hinted(unauthenticated(), true)).unwrap().contains("the API key was refused"));

        let refused = anyhow::Error::from(ClientError::Transport("tcp connect error: Connection refused".into()));
        let text = report(&hinted(refused, true)).unwrap();
        assert!(text.contains("running at http://n1:7700, http://n2:7700?"), "{text}");

        let context = HintContext { addresses: Vec::new(), has_key: true };
        assert!(hint_for(&anyhow::Error::from(api_error()), &context).is_none(), "a 404 needs no hint");
    }
}
