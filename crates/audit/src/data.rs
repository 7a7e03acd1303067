//! The `data` object of an exported event: every field of the event's body, readable, and
//! back again.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;

use keyledger_model::webhook::{AttemptResult, Delivery};
use keyledger_model::{
    AccountLimits, AccountSettings, Binding, ChainHash, Checkpoint, EventBody, LeakAction, Level, Owner, PublicKey,
    Role, Scope, ServiceAccountId, Signature, Span, TreeHash, UserId,
};
use serde_json::{json, Map, Value};

use crate::{hex, parse_hex32, parse_time, ExportError};

/// `body`'s fields as a JSON object.
pub(crate) fn to_data(body: &EventBody) -> Value {
    match body {
        EventBody::AccountCreated { settings } | EventBody::SettingsChanged { settings } => {
            json!({ "settings": settings_json(settings) })
        }
        EventBody::UserCreated { user, name, role } => {
            json!({ "user_id": user.to_string(), "name": name, "role": role.as_str() })
        }
        EventBody::KeyCreated { key, owner, name, description, scope, digest_commitment, hint, expires_at } => json!({
            "key_id": key.to_string(),
            "owner": owner_json(owner),
            "name": name,
            "description": description,
            "scope": scope.as_ref().map(scope_json),
            "digest_commitment": hex(digest_commitment),
            "hint": hint,
            "expires_at": expires_at.map(|t| t.to_string()),
        }),
        EventBody::KeyEnabled { key }
        | EventBody::KeyDisabled { key }
        | EventBody::KeyDeleted { key }
        | EventBody::KeyLocked { key }
        | EventBody::KeyUnlocked { key }
        | EventBody::KeyExpired { key } => json!({ "key_id": key.to_string() }),
        EventBody::KeyUpdated { key, name, description } => {
            json!({ "key_id": key.to_string(), "name": name, "description": description })
        }
        EventBody::KeyRotated { key, replacement, expires_at } => json!({
            "key_id": key.to_string(),
            "replacement_key_id": replacement.to_string(),
            "expires_at": expires_at.to_string(),
        }),
        EventBody::KeyUsed { key, last_used_at, count } => {
            json!({ "key_id": key.to_string(), "last_used_at": last_used_at.to_string(), "count": count })
        }
        EventBody::Denied { operation, target, reason, count } => {
            json!({ "operation": operation, "target": target, "reason": reason, "count": count })
        }
        EventBody::UserDeleted { user } | EventBody::UserDisabled { user } | EventBody::UserEnabled { user } => {
            json!({ "user_id": user.to_string() })
        }
        EventBody::UserRoleChanged { user, role } => json!({ "user_id": user.to_string(), "role": role.as_str() }),
        EventBody::UserNamespaceChanged { user, namespace, level } => json!({
            "user_id": user.to_string(),
            "namespace": namespace,
            "permission": level.map(Level::as_str),
        }),
        EventBody::ServiceAccountCreated { service_account, name, binding } => json!({
            "service_account_id": service_account.to_string(),
            "name": name,
            "binding": binding_json(binding),
        }),
        EventBody::ServiceAccountDeleted { service_account }
        | EventBody::ServiceAccountDisabled { service_account }
        | EventBody::ServiceAccountEnabled { service_account } => {
            json!({ "service_account_id": service_account.to_string() })
        }
        EventBody::NamespaceCreated { name } => json!({ "name": name }),
        EventBody::SignerRegistered { node, public_key } => {
            json!({ "node_id": node, "public_key": public_key.to_hex() })
        }
        EventBody::Checkpoint(c) => json!({
            "tree_size": c.tree_size,
            "root": c.root.to_hex(),
            "head": c.head.to_hex(),
            "signer_node_id": c.signer,
            "public_key": c.public_key.to_hex(),
            "signature": c.signature.to_hex(),
        }),
        EventBody::EnrollmentIssued { user, code_commitment, expires_at } => json!({
            "user_id": user.to_string(),
            "code_commitment": hex(code_commitment),
            "expires_at": expires_at.to_string(),
        }),
        EventBody::Enrolled { user, key } => json!({ "user_id": user.to_string(), "key_id": key.to_string() }),
        EventBody::Leaked { key, source, reporter, action, lock_overridden } => json!({
            "key_id": key.to_string(),
            "source": source,
            "reporter": reporter,
            "action": action.as_str(),
            "lock_overridden": lock_overridden,
        }),
        EventBody::LeakActionChanged { action } => json!({ "action_when_leaked": action.as_str() }),
        EventBody::LimitsChanged { limits } => json!({ "limits": limits_json(limits) }),
        EventBody::UsageGranularityChanged { granularity } => json!({ "last_used_granularity_ms": granularity.0 }),
        EventBody::WebhookCreated { webhook, url, event_types, description, secret_nonce } => json!({
            "webhook_id": webhook.to_string(),
            "url": url,
            "event_types": event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "description": description,
            "secret_nonce": hex(secret_nonce),
        }),
        EventBody::WebhookDeleted { webhook } => json!({ "webhook_id": webhook.to_string() }),
        EventBody::KeyExpiringSoon { key, expires_at } => {
            json!({ "key_id": key.to_string(), "expires_at": expires_at.to_string() })
        }
        EventBody::WebhookSecretRotated { webhook, secret_nonce } => {
            json!({ "webhook_id": webhook.to_string(), "secret_nonce": hex(secret_nonce) })
        }
        EventBody::WebhookDeliveries { webhook, deliveries } => json!({
            "webhook_id": webhook.to_string(),
            "deliveries": deliveries.iter().map(|d| json!({
                "position": d.position,
                "type": d.event_type.as_str(),
                "attempts": d.attempts,
                "result": d.last.as_text(),
                "at": d.at.to_string(),
            })).collect::<Vec<_>>(),
        }),
    }
}

fn limits_json(limits: &AccountLimits) -> Value {
    json!({
        "max_users": limits.max_users,
        "max_service_accounts": limits.max_service_accounts,
        "max_namespaces": limits.max_namespaces,
        "max_accounts": limits.max_accounts,
    })
}

fn settings_json(settings: &AccountSettings) -> Value {
    json!({
        "key_creation_enabled": settings.key_creation_enabled,
        "max_key_lifetime_ms": settings.max_key_lifetime.0,
        "allow_never_expiring": settings.allow_never_expiring,
        "max_keys_per_user": settings.max_keys_per_user,
        "max_keys_per_service_account": settings.max_keys_per_service_account,
    })
}

fn owner_json(owner: &Owner) -> Value {
    match owner {
        Owner::User(id) => json!({ "kind": "user", "id": id.to_string() }),
        Owner::ServiceAccount(id) => json!({ "kind": "service_account", "id": id.to_string() }),
    }
}

fn scope_json(scope: &Scope) -> Value {
    match scope {
        Scope::Role(role) => json!({ "role": role.as_str() }),
        Scope::Namespaces(namespaces) => {
            let map: Map<String, Value> =
                namespaces.iter().map(|(ns, level)| (ns.clone(), Value::from(level.as_str()))).collect();
            json!({ "namespaces": map })
        }
    }
}

fn binding_json(binding: &Binding) -> Value {
    match binding {
        Binding::Account(role) => json!({ "role": role.as_str() }),
        Binding::Namespace { namespace, level } => json!({ "namespace": namespace, "permission": level.as_str() }),
    }
}

/// The body of type `kind` whose fields are `data`.
pub(crate) fn from_data(kind: &str, data: &Value) -> Result<EventBody, ExportError> {
    let d = Fields::of("data", data)?;
    let body = match kind {
        "account_created" => EventBody::AccountCreated { settings: parse_settings(&d.object("settings")?)? },
        "settings_changed" => EventBody::SettingsChanged { settings: parse_settings(&d.object("settings")?)? },
        "limits_changed" => EventBody::LimitsChanged { limits: parse_limits(&d.object("limits")?)? },
        "user_created" => {
            EventBody::UserCreated { user: d.id("user_id")?, name: d.string("name")?, role: d.role("role")? }
        }
        "created" => EventBody::KeyCreated {
            key: d.id("key_id")?,
            owner: parse_owner(&d.object("owner")?)?,
            name: d.string("name")?,
            description: d.string("description")?,
            scope: d.optional_object("scope")?.map(|s| parse_scope(&s)).transpose()?,
            digest_commitment: parse_hex32("data.digest_commitment", d.str("digest_commitment")?)?,
            hint: d.string("hint")?,
            expires_at: d.optional_str("expires_at")?.map(|t| parse_time("data.expires_at", t)).transpose()?,
        },
        "enabled" => EventBody::KeyEnabled { key: d.id("key_id")? },
        "disabled" => EventBody::KeyDisabled { key: d.id("key_id")? },
        "deleted" => EventBody::KeyDeleted { key: d.id("key_id")? },
        "locked" => EventBody::KeyLocked { key: d.id("key_id")? },
        "unlocked" => EventBody::KeyUnlocked { key: d.id("key_id")? },
        "expired" => EventBody::KeyExpired { key: d.id("key_id")? },
        "updated" => EventBody::KeyUpdated {
            key: d.id("key_id")?,
            name: d.string("name")?,
            description: d.string("description")?,
        },
        "rotated" => EventBody::KeyRotated {
            key: d.id("key_id")?,
            replacement: d.id("replacement_key_id")?,
            expires_at: d.time("expires_at")?,
        },
        "used" => {
            EventBody::KeyUsed { key: d.id("key_id")?, last_used_at: d.time("last_used_at")?, count: d.u64("count")? }
        }
        "denied" => EventBody::Denied {
            operation: d.string("operation")?,
            target: d.string("target")?,
            reason: d.string("reason")?,
            count: d.u32("count")?,
        },
        "user_deleted" => EventBody::UserDeleted { user: d.id("user_id")? },
        "user_disabled" => EventBody::UserDisabled { user: d.id("user_id")? },
        "user_enabled" => EventBody::UserEnabled { user: d.id("user_id")? },
        "user_role_changed" => EventBody::UserRoleChanged { user: d.id("user_id")?, role: d.role("role")? },
        "user_namespace_changed" => EventBody::UserNamespaceChanged {
            user: d.id("user_id")?,
            namespace: d.string("namespace")?,
            level: d.optional_str("permission")?.map(|l| parse_level("data.permission", l)).transpose()?,
        },
        "service_account_created" => EventBody::ServiceAccountCreated {
            service_account: d.id("service_account_id")?,
            name: d.string("name")?,
            binding: parse_binding(&d.object("binding")?)?,
        },
        "service_account_deleted" => EventBody::ServiceAccountDeleted { service_account: d.id("service_account_id")? },
        "service_account_disabled" => {
            EventBody::ServiceAccountDisabled { service_account: d.id("service_account_id")? }
        }
        "service_account_enabled" => EventBody::ServiceAccountEnabled { service_account: d.id("service_account_id")? },
        "namespace_created" => EventBody::NamespaceCreated { name: d.string("name")? },
        "signer_registered" => EventBody::SignerRegistered { node: d.u64("node_id")?, public_key: d.public_key()? },
        "checkpoint" => EventBody::Checkpoint(Checkpoint {
            tree_size: d.u64("tree_size")?,
            root: TreeHash(d.hex32("root")?),
            head: ChainHash(d.hex32("head")?),
            signer: d.u64("signer_node_id")?,
            public_key: d.public_key()?,
            signature: Signature::from_hex(&d.string("signature")?)
                .ok_or_else(|| d.error("signature", "not 128 lower-case hex digits"))?,
        }),
        "enrollment_issued" => EventBody::EnrollmentIssued {
            user: d.id("user_id")?,
            code_commitment: d.hex32("code_commitment")?,
            expires_at: d.time("expires_at")?,
        },
        "enrolled" => EventBody::Enrolled { user: d.id("user_id")?, key: d.id("key_id")? },
        "leaked" => EventBody::Leaked {
            key: d.id("key_id")?,
            source: d.string("source")?,
            reporter: d.string("reporter")?,
            action: d.leak_action("action")?,
            lock_overridden: d.bool("lock_overridden")?,
        },
        "leak_action_changed" => EventBody::LeakActionChanged { action: d.leak_action("action_when_leaked")? },
        "usage_granularity_changed" => {
            EventBody::UsageGranularityChanged { granularity: Span(d.i64("last_used_granularity_ms")?) }
        }
        "webhook_created" => EventBody::WebhookCreated {
            webhook: d.id("webhook_id")?,
            url: d.string("url")?,
            event_types: d
                .array("event_types")?
                .iter()
                .map(|t| t.as_str().and_then(|t| t.parse().ok()).ok_or_else(|| d.error("event_types", "unknown type")))
                .collect::<Result<_, _>>()?,
            description: d.string("description")?,
            secret_nonce: d.hex16("secret_nonce")?,
        },
        "webhook_deleted" => EventBody::WebhookDeleted { webhook: d.id("webhook_id")? },
        "expiring_soon" => EventBody::KeyExpiringSoon { key: d.id("key_id")?, expires_at: d.time("expires_at")? },
        "webhook_secret_rotated" => {
            EventBody::WebhookSecretRotated { webhook: d.id("webhook_id")?, secret_nonce: d.hex16("secret_nonce")? }
        }
        "webhook_deliveries" => EventBody::WebhookDeliveries {
            webhook: d.id("webhook_id")?,
            deliveries: d.array("deliveries")?.iter().map(parse_delivery).collect::<Result<_, _>>()?,
        },
        other => return Err(ExportError::new("type", format!("unknown event type {other:?}"))),
    };
    Ok(body)
}

fn parse_delivery(value: &Value) -> Result<Delivery, ExportError> {
    let d = Fields::of("data.deliveries[]", value)?;
    Ok(Delivery {
        position: d.u64("position")?,
        event_type: d.str("type")?.parse().map_err(|_| d.error("type", "unknown webhook event type"))?,
        attempts: d.u32("attempts")?,
        last: AttemptResult::parse(d.str("result")?).ok_or_else(|| d.error("result", "not a delivery result"))?,
        at: d.time("at")?,
    })
}

fn parse_settings(d: &Fields<'_>) -> Result<AccountSettings, ExportError> {
    Ok(AccountSettings {
        key_creation_enabled: d.bool("key_creation_enabled")?,
        max_key_lifetime: Span(d.i64("max_key_lifetime_ms")?),
        allow_never_expiring: d.bool("allow_never_expiring")?,
        max_keys_per_user: d.u32("max_keys_per_user")?,
        max_keys_per_service_account: d.u32("max_keys_per_service_account")?,
    })
}

fn parse_limits(d: &Fields<'_>) -> Result<AccountLimits, ExportError> {
    Ok(AccountLimits {
        max_users: d.u32("max_users")?,
        max_service_accounts: d.u32("max_service_accounts")?,
        max_namespaces: d.u32("max_namespaces")?,
        max_accounts: d.u32("max_accounts")?,
    })
}

fn parse_owner(d: &Fields<'_>) -> Result<Owner, ExportError> {
    match d.str("kind")? {
        "user" => Ok(Owner::User(d.id::<UserId>("id")?)),
        "service_account" => Ok(Owner::ServiceAccount(d.id::<ServiceAccountId>("id")?)),
        _ => Err(d.error("kind", "must be `user` or `service_account`")),
    }
}

fn parse_scope(d: &Fields<'_>) -> Result<Scope, ExportError> {
    if d.map.len() != 1 {
        return Err(d.error("", "a scope has exactly one of `role` and `namespaces`"));
    }
    if d.map.contains_key("role") {
        return Ok(Scope::Role(d.role("role")?));
    }
    let namespaces = d.object("namespaces")?;
    let mut out = BTreeMap::new();
    for (name, level) in namespaces.map {
        let field = format!("{}.{name}", namespaces.path);
        let level = level.as_str().ok_or_else(|| ExportError::new(&field, "not a string"))?;
        out.insert(name.clone(), parse_level(&field, level)?);
    }
    Ok(Scope::Namespaces(out))
}

fn parse_binding(d: &Fields<'_>) -> Result<Binding, ExportError> {
    if d.map.contains_key("role") {
        return Ok(Binding::Account(d.role("role")?));
    }
    let namespace = d.string("namespace")?;
    let level = d.str("permission")?;
    Ok(Binding::Namespace { namespace, level: parse_level(&d.field("permission"), level)? })
}

fn parse_level(field: &str, text: &str) -> Result<Level, ExportError> {
    text.parse().map_err(|_| ExportError::new(field, "must be `admin`, `write` or `read`"))
}

/// An id of type `T` from its `Display` form.
pub(crate) fn parse_id<T: FromStr>(field: &str, text: &str) -> Result<T, ExportError> {
    text.parse().map_err(|_| bad_id(field, text))
}

fn bad_id(field: &str, text: &str) -> ExportError {
    ExportError::new(field, format!("{text:?} is not an id of the right kind"))
}

/// The fields of one JSON object, with the path to it for error messages.
struct Fields<'a> {
    /// `data`, or `data.owner` for a nested object: only nested objects need a new string.
    path: Cow<'static, str>,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn of(path: impl Into<Cow<'static, str>>, value: &'a Value) -> Result<Fields<'a>, ExportError> {
        let path = path.into();
        let map = value.as_object().ok_or_else(|| ExportError::new(&path, "not an object"))?;
        Ok(Fields { path, map })
    }

    /// The full name of field `name`, for an error message (built only when one is needed).
    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }

    fn error(&self, name: &str, message: &str) -> ExportError {
        let field = if name.is_empty() { self.path.to_string() } else { self.field(name) };
        ExportError::new(&field, message)
    }

    fn get(&self, name: &str) -> Result<&'a Value, ExportError> {
        self.map.get(name).ok_or_else(|| self.error(name, "missing"))
    }

    fn str(&self, name: &str) -> Result<&'a str, ExportError> {
        self.get(name)?.as_str().ok_or_else(|| self.error(name, "not a string"))
    }

    fn string(&self, name: &str) -> Result<String, ExportError> {
        self.str(name).map(str::to_string)
    }

    fn optional_str(&self, name: &str) -> Result<Option<&'a str>, ExportError> {
        match self.get(name)? {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text)),
            _ => Err(self.error(name, "not a string or null")),
        }
    }

    fn object(&self, name: &str) -> Result<Fields<'a>, ExportError> {
        Fields::of(self.field(name), self.get(name)?)
    }

    fn optional_object(&self, name: &str) -> Result<Option<Fields<'a>>, ExportError> {
        match self.get(name)? {
            Value::Null => Ok(None),
            _ => self.object(name).map(Some),
        }
    }

    fn id<T: FromStr>(&self, name: &str) -> Result<T, ExportError> {
        let text = self.str(name)?;
        text.parse().map_err(|_| bad_id(&self.field(name), text))
    }

    fn time(&self, name: &str) -> Result<keyledger_model::Timestamp, ExportError> {
        let text = self.str(name)?;
        // The usual spelling directly, so the field's name is only built for `parse_time`'s errors.
        keyledger_model::Timestamp::parse_display(text).map_or_else(|| parse_time(&self.field(name), text), Ok)
    }

    fn role(&self, name: &str) -> Result<Role, ExportError> {
        Role::parse(self.str(name)?).ok_or_else(|| self.error(name, "must be `owner`, `admin`, `developer` or `read`"))
    }

    fn leak_action(&self, name: &str) -> Result<LeakAction, ExportError> {
        LeakAction::parse(self.str(name)?).ok_or_else(|| self.error(name, "must be `disable`, `delete` or `none`"))
    }

    fn bool(&self, name: &str) -> Result<bool, ExportError> {
        self.get(name)?.as_bool().ok_or_else(|| self.error(name, "not a boolean"))
    }

    fn u64(&self, name: &str) -> Result<u64, ExportError> {
        self.get(name)?.as_u64().ok_or_else(|| self.error(name, "not a whole number"))
    }

    fn u32(&self, name: &str) -> Result<u32, ExportError> {
        u32::try_from(self.u64(name)?).map_err(|_| self.error(name, "too large"))
    }

    fn hex32(&self, name: &str) -> Result<[u8; 32], ExportError> {
        parse_hex32(&format!("{}.{name}", self.path), &self.string(name)?)
    }

    fn hex16(&self, name: &str) -> Result<[u8; 16], ExportError> {
        keyledger_model::hex::decode(self.str(name)?).ok_or_else(|| self.error(name, "not 32 lower-case hex digits"))
    }

    fn array(&self, name: &str) -> Result<&'a Vec<Value>, ExportError> {
        self.get(name)?.as_array().ok_or_else(|| self.error(name, "not an array"))
    }

    fn public_key(&self) -> Result<PublicKey, ExportError> {
        Ok(PublicKey(self.hex32("public_key")?))
    }

    fn i64(&self, name: &str) -> Result<i64, ExportError> {
        self.get(name)?.as_i64().ok_or_else(|| self.error(name, "not a whole number"))
    }
}
