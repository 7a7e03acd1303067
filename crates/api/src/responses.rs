//! The API's error answers as OpenAPI responses, and the sets of them that operations share.
//!
//! Each answer (`BadRequest`, `NotFound`, …) is one `components.responses` entry of the document;
//! each set (`ChangeErrors`, `ReadOneErrors`, …) names the answers a kind of operation can give,
//! so a handler's `#[utoipa::path]` says `crate::responses::ChangeErrors` instead of spelling the
//! list out. The success answer most writes share, the changed object (`KeyChanged`, …), is
//! declared here too. Handlers and `openapi.rs` both import this module, and it imports neither,
//! so the handlers do not depend on the document that lists them.
//!
//! `429 rate_limited` is in no set: `openapi.rs` adds it to every operation that needs an API key.

use std::collections::BTreeMap;

use keyledger_wire as wire;
use serde_json::json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, PartialSchema, ToResponse, ToSchema};

/// Declares a reusable error answer: `name => (status description, example code, example message)`.
/// Each is a `components.responses` entry whose body is `ErrorBody`.
macro_rules! error_responses {
    ($($name:ident => ($description:literal, $code:literal, $message:literal);)+) => {$(
        #[doc = $description]
        pub(crate) struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_response($description, $code, $message))
            }
        }
    )+};
}

error_responses! {
    BadRequest => (
        "`invalid_argument`: the request is malformed or asks for something the account's policy does not allow; \
         the message says what is accepted.",
        "invalid_argument",
        "`expires_in`: a duration such as 30d, 4d12h, 90m or 2y"
    );
    Unauthenticated => (
        "`unauthenticated`: no `Authorization: Bearer <api key>`, or the key is not valid.",
        "unauthenticated",
        "the API key is not valid"
    );
    PermissionDenied => (
        "`permission_denied`: the caller may see the object but not do this to it.",
        "permission_denied",
        "the caller may not do this to that key"
    );
    NotFound => (
        "`not_found`: no such object, an id of the wrong form, or an object the caller may not see.",
        "not_found",
        "no such key"
    );
    Conflict => (
        "`key_locked`, `limit_exceeded`, `creation_disabled` or `conflict`: the object's state or the account's \
         limits refuse the change, or an `Idempotency-Key` was reused with another request.",
        "key_locked",
        "the key is locked; unlock it first"
    );
    RevisionMismatch => (
        "`revision_mismatch`: `If-Match` names a revision other than the key's current one.",
        "revision_mismatch",
        "the key changed since revision 11; it is at revision 12"
    );
    PayloadTooLarge => (
        "`payload_too_large`: the request body is over 1 MiB.",
        "payload_too_large",
        "the request body is larger than 1 MiB"
    );
    RateLimited => (
        "`rate_limited`: this client address failed to authenticate too often this minute (`Retry-After` says \
         for how long it is refused), or the caller or the node has as many exports or change feeds open as allowed.",
        "rate_limited",
        "too many failed authentications from this address; try again when the minute is over"
    );
    Unavailable => (
        "`unavailable` (no leader or no quorum; nothing was written, safe to retry) or `outcome_unknown` \
         (proposed but not confirmed in time; the change may still be applied).",
        "unavailable",
        "no leader; nothing was written, it is safe to retry"
    );
}

fn error_response(description: &str, code: &str, message: &str) -> RefOr<Response> {
    let example = json!({ "error": { "code": code, "message": message, "request_id": "req_1_5f0c3a9d2b7e4c11" } });
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).example(Some(example)).build();
    ResponseBuilder::new().description(description).content("application/json", content).build().into()
}

/// Declares a set of error answers: `name => [status => answer, …]`. Each status refers to the
/// answer's `components.responses` entry, so the document spells every answer out once.
macro_rules! response_sets {
    ($($(#[doc = $doc:literal])+ $name:ident => [$($status:literal => $answer:ident),+ $(,)?];)+) => {$(
        $(#[doc = $doc])+
        pub(crate) struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$(
                    ($status.to_string(), Ref::from_response_name(<$answer as ToResponse>::response().0).into()),
                )+])
            }
        }
    )+};
}

response_sets! {
    /// An authenticated read: a malformed query (or `consistency`) or a missing or bad key.
    ReadErrors => ["400" => BadRequest, "401" => Unauthenticated];
    /// Reading one object by its id, which may not exist or not be visible to the caller.
    ReadOneErrors => ["400" => BadRequest, "401" => Unauthenticated, "404" => NotFound];
    /// A read only some roles may make (the account's ledger, its proofs, the account list).
    RestrictedReadErrors => ["400" => BadRequest, "401" => Unauthenticated, "403" => PermissionDenied];
    /// Reading one object only some roles may read (a webhook and its deliveries).
    RestrictedReadOneErrors => [
        "400" => BadRequest,
        "401" => Unauthenticated,
        "403" => PermissionDenied,
        "404" => NotFound,
    ];
    /// A body sent without an API key: it may be malformed or too large.
    PublicBodyErrors => ["400" => BadRequest, "413" => PayloadTooLarge];
    /// Creating an object from a request body: a write that the account's limits or an existing
    /// name may refuse.
    CreateErrors => [
        "400" => BadRequest,
        "401" => Unauthenticated,
        "403" => PermissionDenied,
        "409" => Conflict,
        "413" => PayloadTooLarge,
        "503" => Unavailable,
    ];
    /// A change to an existing object that takes no request body (enable, lock, delete, …).
    ChangeErrors => [
        "400" => BadRequest,
        "401" => Unauthenticated,
        "403" => PermissionDenied,
        "404" => NotFound,
        "409" => Conflict,
        "503" => Unavailable,
    ];
    /// A change to an existing object described by a request body.
    ChangeWithBodyErrors => [
        "400" => BadRequest,
        "401" => Unauthenticated,
        "403" => PermissionDenied,
        "404" => NotFound,
        "409" => Conflict,
        "413" => PayloadTooLarge,
        "503" => Unavailable,
    ];
}

/// Declares the success answer of a write: `name => (status, description, body type)`, or
/// `name => (status, description)` for one without a body. Each carries the `X-Keyledger-Index`
/// header, the ledger position the write committed at, which is also how `openapi.rs`
/// recognises a write.
macro_rules! write_answers {
    ($($(#[doc = $doc:literal])+ $name:ident => ($status:literal, $description:literal $(, $body:ty)?);)+) => {$(
        $(#[doc = $doc])+
        pub(crate) struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let body: Option<String> = None $(.or(Some(<$body as ToSchema>::name().into_owned())))?;
                BTreeMap::from([($status.to_string(), write_answer($description, body.as_deref()))])
            }
        }
    )+};
}

write_answers! {
    /// A key after an update, enable, disable, lock or unlock.
    KeyChanged => ("200", "The key as it is now.", wire::Key);
    /// A user after an update, enable or disable, or a namespace permission set or removed.
    UserChanged => ("200", "The user as it is now.", wire::User);
    /// A service account after enable or disable.
    ServiceAccountChanged => ("200", "The service account as it is now.", wire::ServiceAccount);
    /// The settings after a change.
    SettingsChanged => ("200", "The settings as they are now.", wire::Settings);
    /// A new key and its secret.
    KeyCreated => ("201", "The new key and its secret.", wire::CreatedKey);
    /// An enrolled user's first key.
    KeyEnrolled => ("201", "The user's new key and its secret.", wire::CreatedKey);
    /// A rotation's successor.
    KeyRotated => ("201", "The new key, its secret (shown this once) and the old key's id.", wire::RotatedKey);
    /// A new user.
    UserCreated => ("201", "The new user and its enrollment code.", wire::CreatedUser);
    /// A new enrollment code.
    EnrollmentIssued => ("201", "The new code, shown this once, and when it expires (24 h).", wire::EnrollmentCode);
    /// A new service account.
    ServiceAccountCreated => ("201", "The new service account.", wire::ServiceAccount);
    /// A new namespace.
    NamespaceCreated => ("201", "The new namespace.", wire::Namespace);
    /// A new account.
    AccountCreated => ("201", "The account, its owner, and the owner's enrollment code (shown this once) with its expiry.", wire::CreatedAccount);
    /// A new webhook and its signing secret.
    WebhookCreated => ("201", "The new webhook and its signing secret (shown this once).", wire::CreatedWebhook);
    /// A webhook's new signing secret.
    WebhookSecretRotated => ("200", "The webhook and its new signing secret (shown this once); the old one no longer signs.", wire::CreatedWebhook);
    /// A deleted webhook.
    WebhookDeleted => ("204", "The webhook is deleted; nothing more is delivered to it.");
    /// A deleted key.
    KeyDeleted => ("204", "The key is deleted.");
    /// A deleted user.
    UserDeleted => ("204", "The user is deleted.");
    /// A deleted service account.
    ServiceAccountDeleted => ("204", "The service account is deleted.");
}

fn write_answer(description: &str, body: Option<&str>) -> RefOr<Response> {
    let index = HeaderBuilder::new()
        .schema(<u64 as PartialSchema>::schema())
        .description(Some("The ledger position the write committed at."))
        .build();
    let mut response = ResponseBuilder::new().description(description).header("X-Keyledger-Index", index);
    if let Some(schema) = body {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build();
        response = response.content("application/json", content);
    }
    response.build().into()
}

/// Declares the path parameters operations share: `name { field: "description" }`, so each
/// `#[utoipa::path]` says `params(KeyIdPath)` instead of spelling the parameter out.
macro_rules! path_params {
    ($($name:ident { $field:ident : $description:literal })+) => {$(
        #[derive(utoipa::IntoParams)]
        #[into_params(parameter_in = Path)]
        pub(crate) struct $name {
            #[doc = $description]
            #[allow(dead_code, reason = "read by the OpenAPI derive only; handlers take `Path<String>`")]
            $field: String,
        }
    )+};
}

path_params! {
    KeyIdPath { id: "The key's id." }
    UserIdPath { id: "The user's id." }
    ServiceAccountIdPath { id: "The service account's id." }
    NamespacePath { namespace: "The namespace's name." }
    WebhookIdPath { id: "The webhook's id." }
}
