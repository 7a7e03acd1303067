//! The OpenAPI 3 document of the API, generated from the code: the `#[utoipa::path]` on every
//! handler and the `ToSchema` of every wire type. Served at `GET /v1/openapi.json` and checked
//! in as `docs/openapi.json`; `crates/api/tests/openapi.rs` keeps the two equal and checks that
//! every route in [`crate::ROUTES`] is documented.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use keyledger_model::idempotency::MAX_KEY_LEN;
use keyledger_wire as wire;
use serde_json::{json, Map, Value};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Required};
use utoipa::{Modify, OpenApi};

use crate::responses::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, PermissionDenied, RateLimited, RevisionMismatch, Unauthenticated,
    Unavailable,
};
use crate::{
    accounts, audit, auth_request, enroll, key_batch, key_ops, keys, leaked, metrics, namespaces, ops, proofs, replay,
    service_accounts, settings, stream, users, verify, webhooks,
};

/// The name of the security scheme every authenticated operation names.
pub(crate) const BEARER: &str = "api_key";
/// The response header of every write, as the annotations spell it.
const INDEX_HEADER: &str = "X-Keyledger-Index";

/// The OpenAPI document: every path, every schema, the error answers and the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "keyledger",
        description = "keyledger is an API-key service: it issues, rotates, locks and revokes API keys for users \
            and service accounts, and verifies them. Every change is an event in a Raft-replicated, hash-chained \
            ledger, and verification is answered from each node's memory. Every `/v1` endpoint except \
            `POST /v1/verify`, `GET /v1/audit/public-key` and this document needs `Authorization: Bearer <api key>`. Every error is JSON, \
            `{\"error\": {\"code\", \"message\", \"request_id\"}}`, with a stable snake_case `code`; a method an \
            endpoint does not take is `405 method_not_allowed` and an unexpected failure `500 internal`, both with \
            that shape. Every write takes an optional `Idempotency-Key`, the safe way to retry, and its answer \
            carries `X-Keyledger-Index`, the ledger position it committed at, which `POST /v1/verify` accepts as \
            `min_index`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        keys::create,
        key_batch::create_batch,
        leaked::report,
        keys::list,
        keys::summary,
        keys::get,
        key_ops::update,
        keys::delete,
        key_ops::enable,
        key_ops::disable,
        key_ops::lock,
        key_ops::unlock,
        key_ops::rotate,
        audit::key_history,
        users::create,
        users::issue_enrollment,
        enroll::enroll,
        users::list,
        users::get,
        users::update,
        users::delete,
        users::disable,
        users::enable,
        users::set_namespace,
        users::remove_namespace,
        service_accounts::create,
        service_accounts::list,
        service_accounts::get,
        service_accounts::delete,
        service_accounts::disable,
        service_accounts::enable,
        namespaces::create,
        namespaces::list,
        settings::get,
        settings::update,
        accounts::create,
        accounts::list,
        audit::events,
        audit::export,
        crate::backup::backup,
        proofs::public_key,
        proofs::checkpoints,
        proofs::latest_checkpoint,
        proofs::inclusion,
        proofs::consistency,
        replay::replay,
        stream::stream,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::delete,
        webhooks::rotate_secret,
        webhooks::deliveries,
        verify::verify,
        verify::verify_as_of,
        auth_request::auth_request,
        auth_request::auth_request_slash,
        auth_request::auth_request_below,
        ops::cluster,
        ops::add_member,
        ops::remove_member,
        serve,
        ops::healthz,
        ops::readyz,
        metrics::serve,
    ),
    components(
        schemas(
            wire::ErrorBody,
            wire::ErrorDetail,
            wire::OwnerKind,
            wire::OwnerRef,
            wire::Identity,
            wire::Actor,
            wire::KeyScope,
            wire::CreateKeyRequest,
            wire::Key,
            wire::CreatedKey,
            wire::CreateKeysRequest,
            wire::CreatedKeys,
            wire::KeyBatchResult,
            wire::LeakReport,
            wire::LeakReportAccepted,
            wire::KeyList,
            wire::KeySummary,
            wire::UpdateKeyRequest,
            wire::RotateKeyRequest,
            wire::RotatedKey,
            wire::VerifyRequest,
            wire::VerifyResponse,
            wire::VerifyAsOfRequest,
            wire::VerifyAsOfResponse,
            wire::User,
            wire::CreatedUser,
            wire::EnrollmentCode,
            wire::EnrollRequest,
            wire::CreateUserRequest,
            wire::UpdateUserRequest,
            wire::NamespacePermissionRequest,
            wire::UserList,
            wire::ServiceAccount,
            wire::CreateServiceAccountRequest,
            wire::ServiceAccountList,
            wire::Namespace,
            wire::CreateNamespaceRequest,
            wire::NamespaceList,
            wire::AccountSummary,
            wire::AccountList,
            wire::Settings,
            wire::UpdateSettingsRequest,
            wire::CreateAccountRequest,
            wire::CreatedAccount,
            wire::AuditEvent,
            wire::EventList,
            wire::KeyHistory,
            wire::SigningKeys,
            wire::SigningKey,
            wire::CheckpointList,
            wire::InclusionProof,
            wire::ConsistencyProof,
            wire::Replay,
            wire::LedgerHead,
            wire::Member,
            wire::ClusterStatus,
            wire::AddMemberRequest,
            wire::Health,
            wire::CreateWebhookRequest,
            wire::Webhook,
            wire::CreatedWebhook,
            wire::WebhookList,
            wire::WebhookDelivery,
            wire::WebhookDeliveryList,
        ),
        responses(
            BadRequest,
            Unauthenticated,
            PermissionDenied,
            NotFound,
            Conflict,
            RevisionMismatch,
            PayloadTooLarge,
            Unavailable,
            RateLimited,
        ),
    ),
    modifiers(&BearerScheme, &AbsentNotNull, &IdempotencyKey, &Consistency, &RateLimitedAnswers),
    tags(
        (name = "keys", description = "API keys: create, list, read, change, rotate, delete."),
        (name = "verification", description = "Checking a presented key; answered from the node's memory."),
        (name = "users", description = "The people of an account, their roles and namespace permissions."),
        (name = "service-accounts", description = "Non-human identities, bound to a role or to one namespace."),
        (name = "namespaces", description = "Namespaces that narrow permissions within an account."),
        (name = "settings", description = "The account's key policy."),
        (name = "accounts", description = "Creating further accounts."),
        (name = "audit", description = "The ledger: the account's events in pages and a streamed export, signed checkpoints \
            and Merkle proofs (owners and admins; the signing keys are public)."),
        (name = "webhooks", description = "Signed HTTP deliveries of the account's key events (owners and admins)."),
        (name = "operations", description = "Cluster status, health, metrics and this document."),
    ),
)]
pub struct ApiDoc;

/// Adds the bearer scheme the operations' `security` names.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("klk_...")
            .description(Some("An API key, sent as `Authorization: Bearer <api key>`."))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// Adds `429 rate_limited` to every operation that needs an API key: an address over its failed
/// authentications is refused on all of them (`abuse.rs`), and exports and feeds over their caps.
struct RateLimitedAnswers;

impl Modify for RateLimitedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations_mut(openapi) {
            if operation.security.as_ref().is_some_and(|security| !security.is_empty()) {
                operation
                    .responses
                    .responses
                    .insert("429".to_string(), RefOr::Ref(Ref::from_response_name("RateLimited")));
            }
        }
    }
}

/// Every operation of the document, whatever its method.
fn operations_mut(openapi: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        let PathItem { get, put, post, delete, options, head, patch, trace, .. } = item;
        [get, put, post, delete, options, head, patch, trace].into_iter().filter_map(Option::as_mut)
    })
}

/// Adds the optional `consistency` query parameter to every `/v1` read (see `consistency.rs`).
struct Consistency;

impl Modify for Consistency {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
                continue;
            }
            let verify = matches!(path.as_str(), "/v1/verify" | "/v1/verify/as-of");
            let reads = [item.get.as_mut(), item.post.as_mut().filter(|_| verify)];
            for operation in reads.into_iter().flatten() {
                let schema = ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["local", "linearizable"]))
                    .default(Some(json!("local")))
                    .build();
                let parameter = ParameterBuilder::new()
                    .name(crate::consistency::PARAMETER)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(
                        "`local` (the default) answers from this node's state at once. `linearizable` first makes \
                         sure this node has applied everything the cluster committed when the request arrived \
                         (a Raft read index through the leader), so the answer reflects every write acknowledged \
                         before it; `503 unavailable` if no leader confirms within 3 s.",
                    ))
                    .schema(Some(schema))
                    .build();
                operation.parameters.get_or_insert_with(Vec::new).push(parameter);
                // Any other value of the parameter is refused.
                operation
                    .responses
                    .responses
                    .entry("400".to_string())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("BadRequest")));
            }
        }
    }
}

/// utoipa renders an optional header or request body (an `Option` in the annotation) as one
/// that may also be `null`; here they may only be absent, so the `null` is taken out again.
struct AbsentNotNull;

impl Modify for AbsentNotNull {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations_mut(openapi) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let (ParameterIn::Header, Some(RefOr::T(Schema::Object(object)))) =
                    (&parameter.parameter_in, &mut parameter.schema)
                {
                    if let SchemaType::Array(types) = &object.schema_type {
                        let types: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
                        object.schema_type = match <[Type; 1]>::try_from(types) {
                            Ok([one]) => SchemaType::Type(one),
                            Err(types) => SchemaType::Array(types),
                        };
                    }
                }
            }
            let Some(body) = &mut operation.request_body else { continue };
            if body.required == Some(Required::True) {
                continue;
            }
            for content in body.content.values_mut() {
                if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                    let mut rest = one_of.items.iter().filter(|item| !is_null(item));
                    if let (Some(only), None) = (rest.next(), rest.next()) {
                        content.schema = Some(only.clone());
                        body.required = Some(Required::False);
                    }
                }
            }
        }
    }
}

/// Every write (an operation whose success carries `X-Keyledger-Index`) takes an optional
/// `Idempotency-Key`, and so can also answer `400` (a malformed key) and `409` (a key reused
/// with another request, or a retry of a write whose answer showed a secret).
struct IdempotencyKey;

impl Modify for IdempotencyKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations_mut(openapi) {
            let writes = operation.responses.responses.iter().any(|(status, response)| {
                status.starts_with('2') && matches!(response, RefOr::T(r) if r.headers.contains_key(INDEX_HEADER))
            });
            if !writes {
                continue;
            }
            let schema = ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_KEY_LEN))
                .build();
            let parameter = ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(format!(
                    "Makes the write safe to retry (after `503 outcome_unknown`, say): a retry with the same key, \
                     method, path and body within 24 hours answers what the first request did and writes nothing \
                     new. The same key with another request is `409 conflict`, and so is a retry of a write whose \
                     answer showed a secret, which is shown only once. 1 to {MAX_KEY_LEN} printable ASCII \
                     characters."
                )))
                .schema(Some(schema))
                .build();
            operation.parameters.get_or_insert_with(Vec::new).push(parameter);
            for (status, name) in [("400", "BadRequest"), ("409", "Conflict")] {
                operation
                    .responses
                    .responses
                    .entry(status.into())
                    .or_insert_with(|| Ref::from_response_name(name).into());
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(object)) if object.schema_type == SchemaType::Type(Type::Null))
}

/// The document as pretty JSON with every object's keys sorted, so the text is the same on
/// every run and every build.
pub fn openapi_json() -> String {
    let value = serde_json::to_value(ApiDoc::openapi()).expect("an OpenAPI document is JSON");
    let mut text = serde_json::to_string_pretty(&sorted(value)).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// `value` with the keys of every object in sorted order (whatever map serde_json is built with).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The OpenAPI 3 document of this API (this document).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "get_openapi",
    tag = "operations",
    responses((
        status = 200,
        description = "The OpenAPI 3 document of this API.",
        body = Object,
        content_type = "application/json",
    )),
)]
pub(crate) async fn serve() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.get_or_init(openapi_json).as_str())
}
