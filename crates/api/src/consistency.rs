//! `?consistency=linearizable` on reads (every `GET`, and `POST /v1/verify` and
//! `/v1/verify/as-of`): before the handler reads this node's state, a Raft read barrier makes
//! sure it has applied everything committed when the request arrived, so the answer reflects
//! every write acknowledged before it, whichever node answers. `consistency=local` (the default)
//! answers from this node's state at once. The parameter is taken off the query here, so the
//! handlers never see it.

use axum::extract::Request;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

pub(crate) const PARAMETER: &str = "consistency";

/// Does `consistency` apply to this request?
fn is_read(method: &Method, path: &str) -> bool {
    *method == Method::GET || (*method == Method::POST && matches!(path, "/v1/verify" | "/v1/verify/as-of"))
}

/// The request with `consistency` taken off its query, once this node may answer it as asked;
/// or the answer refusing it.
pub(crate) async fn prepare(app: &AppState, mut request: Request) -> Result<Request, Response> {
    if !is_read(request.method(), request.uri().path()) {
        return Ok(request);
    }
    let Some((wanted, uri)) = take_parameter(request.uri()) else {
        return Ok(request);
    };
    match wanted.as_str() {
        "local" => {}
        "linearizable" => {
            if let Err(why) = app.node.read_barrier().await {
                return Err(
                    ApiError::unavailable(format!("a linearizable read is not possible now: {why}")).into_response()
                );
            }
        }
        _ => return Err(ApiError::invalid("`consistency` must be `local` or `linearizable`").into_response()),
    }
    *request.uri_mut() = uri;
    Ok(request)
}

/// The `consistency` value and the URI without it; `None` when the query has none.
fn take_parameter(uri: &Uri) -> Option<(String, Uri)> {
    let query = uri.query()?;
    let mut wanted = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((PARAMETER, value)) => wanted = Some(value.to_string()),
            None if pair == PARAMETER => wanted = Some(String::new()),
            _ => rest.push(pair),
        }
    }
    let wanted = wanted?;
    let path = uri.path();
    let rebuilt = if rest.is_empty() { path.to_string() } else { format!("{path}?{}", rest.join("&")) };
    // The path and the other pairs come from a URI that parsed, so this one parses too.
    Some((wanted, rebuilt.parse().unwrap_or_else(|_| Uri::from_static("/"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_is_taken_off_the_query() {
        let (wanted, uri) =
            take_parameter(&"/v1/keys?limit=5&consistency=linearizable&state=enabled".parse().unwrap()).unwrap();
        assert_eq!((wanted.as_str(), uri.to_string().as_str()), ("linearizable", "/v1/keys?limit=5&state=enabled"));
        let (wanted, uri) = take_parameter(&"/v1/keys?consistency=local".parse().unwrap()).unwrap();
        assert_eq!((wanted.as_str(), uri.to_string().as_str()), ("local", "/v1/keys"));
        assert!(take_parameter(&"/v1/keys?limit=5".parse().unwrap()).is_none());
        assert!(take_parameter(&"/v1/keys".parse().unwrap()).is_none());
        assert!(is_read(&Method::POST, "/v1/verify") && !is_read(&Method::POST, "/v1/keys"));
    }
}
