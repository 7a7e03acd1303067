//! The workflows users bring from the systems they know, end to end over HTTP: rotation the
//! Temporal way, service accounts rotating their own keys, namespace admins, IBM's locks and
//! preconditions, limits, the creation switch, expiry, last use, read-only users, permission
//! checks at verification, and disabled identities.

use std::time::Duration;

use keyledger_client::{Client, ListKeys};
use keyledger_wire as wire;

use crate::single_node::assert_invalid;
use crate::util::{
    account_sa, expect_refused, key_for, namespace_sa, new_key, poll, service_account_with_key, user_with_key,
    verify_req, Cluster,
};

/// How long the expiry sweep and the batched `used` events may take to show (they run every
/// 1 s and 2 s; generous for a loaded machine).
const BACKGROUND: Duration = Duration::from_secs(15);

async fn verify(client: &Client, secret: &str) -> wire::VerifyResponse {
    client.verify(&verify_req(secret, None)).await.unwrap()
}

async fn verify_for(client: &Client, secret: &str, permission: &str) -> wire::VerifyResponse {
    let req = wire::VerifyRequest { key: secret.into(), permission: Some(permission.into()), min_index: None };
    client.verify(&req).await.unwrap()
}

/// Temporal's procedure: create a second key, both work, switch to it, delete the first.
/// Then the same with `rotate`: both work during the grace period; with grace `0` the old key
/// is refused at once.
#[tokio::test]
async fn rotation_by_hand_and_by_rotate_keeps_a_working_key_throughout() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);

    let first = admin.create_key(&new_key("worker")).await.unwrap().value;
    let second = admin.create_key(&new_key("worker")).await.unwrap().value;
    assert!(verify(&admin, &first.secret).await.valid, "the old key works while both exist");
    assert!(verify(&admin, &second.secret).await.valid, "the new key works at once");
    admin.delete_key(&first.key.id).await.unwrap();
    assert_invalid(&admin, &first.secret, "deleted").await;
    assert!(verify(&admin, &second.secret).await.valid, "deleting the old key leaves the new one");

    let rotated = admin
        .rotate_key(&second.key.id, &wire::RotateKeyRequest { grace: Some("1h".into()), ..Default::default() })
        .await
        .unwrap();
    let third = rotated.value;
    assert_eq!(third.replaces, second.key.id);
    assert_ne!(third.key.id, second.key.id);
    assert_eq!((third.key.name.as_str(), &third.key.owner), ("worker", &second.key.owner));
    assert!(verify(&admin, &second.secret).await.valid, "the old key works during the grace period");
    assert!(verify(&admin, &third.secret).await.valid, "the new key works at once");
    let old = admin.get_key(&second.key.id).await.unwrap().value;
    let grace_end = old.expires_at.expect("the rotated key now expires");
    assert!(grace_end < second.key.expires_at.clone().unwrap(), "the grace period ends before the old expiry");
    assert!(old.revision > second.key.revision, "the rotation is a state change of the old key");

    let fourth = admin
        .rotate_key(&third.key.id, &wire::RotateKeyRequest { grace: Some("0".into()), ..Default::default() })
        .await;
    let fourth = fourth.unwrap().value;
    assert_invalid(&admin, &third.secret, "expired").await;
    assert!(verify(&admin, &fourth.secret).await.valid);
    assert_eq!(admin.get_key(&third.key.id).await.unwrap().value.state, "expired");
}

/// A service account may rotate its own key (self-rotation) but, holding no admin role, may
/// neither delete nor disable it; the refusals change nothing.
#[tokio::test]
async fn a_service_account_rotates_its_own_key_but_cannot_delete_it() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let (sa, secret) = service_account_with_key(&admin, account_sa("deployer", "developer")).await;
    let own_key = verify(&admin, &secret).await.key_id.unwrap();
    let bot = cluster.client_as(&secret);

    let rotated = bot
        .rotate_key(&own_key, &wire::RotateKeyRequest { grace: Some("1h".into()), ..Default::default() })
        .await
        .unwrap()
        .value;
    assert_eq!(rotated.key.owner.id, sa.id);
    let answer = verify(&admin, &rotated.secret).await;
    assert!(answer.valid, "{answer:?}");
    let identity = answer.identity.unwrap();
    assert_eq!((identity.kind, identity.id.as_str()), (wire::OwnerKind::ServiceAccount, sa.id.as_str()));

    let new_bot = cluster.client_as(&rotated.secret);
    for client in [&bot, &new_bot] {
        for id in [&own_key, &rotated.key.id] {
            expect_refused(client.delete_key(id).await, 403, "permission_denied");
            expect_refused(client.disable_key(id).await, 403, "permission_denied");
        }
    }
    assert_eq!(admin.get_key(&rotated.key.id).await.unwrap().value.state, "enabled");
    assert!(verify(&admin, &secret).await.valid, "the old key still works during the grace period");

    // Another identity's key is not the service account's to rotate, nor even to see.
    let admin_key = verify(&admin, cluster.admin_key()).await.key_id.unwrap();
    expect_refused(new_bot.rotate_key(&admin_key, &Default::default()).await, 404, "not_found");
}

/// A user holding `admin` on `payments` manages the keys of that namespace's service accounts
/// and nothing else: other namespaces' and account-scoped service accounts' keys are hidden
/// (404), and creating keys for them is refused (403).
#[tokio::test]
async fn a_namespace_admin_manages_only_its_namespace_service_account_keys() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();
    admin.create_namespace("staging").await.unwrap();
    let (alice, alice_secret) = user_with_key(&admin, "alice", "developer").await;
    admin.set_user_namespace(&alice.id, "payments", "admin").await.unwrap();
    let pay = admin.create_service_account(&namespace_sa("pay-bot", "payments", "write")).await.unwrap().value;
    let (stage, _) = service_account_with_key(&admin, namespace_sa("stage-bot", "staging", "write")).await;
    let (acct, _) = service_account_with_key(&admin, account_sa("acct-bot", "developer")).await;
    let others = admin.list_keys(&ListKeys::default()).await.unwrap().keys;
    let stage_key = others.iter().find(|k| k.owner.id == stage.id).unwrap().id.clone();
    let acct_key = others.iter().find(|k| k.owner.id == acct.id).unwrap().id.clone();
    let alice_client = cluster.client_as(&alice_secret);

    let created = key_for(&alice_client, wire::OwnerKind::ServiceAccount, &pay.id, "pay-1").await;
    assert_eq!(created.key.namespace.as_deref(), Some("payments"));
    alice_client.disable_key(&created.key.id).await.unwrap();
    alice_client.enable_key(&created.key.id).await.unwrap();
    alice_client.lock_key(&created.key.id).await.unwrap();
    alice_client.unlock_key(&created.key.id).await.unwrap();
    let second = key_for(&alice_client, wire::OwnerKind::ServiceAccount, &pay.id, "pay-2").await;
    alice_client.delete_key(&second.key.id).await.unwrap();

    for (kind, id) in [(wire::OwnerKind::ServiceAccount, &stage.id), (wire::OwnerKind::ServiceAccount, &acct.id)] {
        let req = wire::CreateKeyRequest { owner: Some(wire::OwnerRef { kind, id: id.clone() }), ..new_key("x") };
        expect_refused(alice_client.create_key(&req).await, 403, "permission_denied");
    }
    for id in [&stage_key, &acct_key] {
        expect_refused(alice_client.get_key(id).await, 404, "not_found");
        expect_refused(alice_client.disable_key(id).await, 404, "not_found");
        expect_refused(alice_client.delete_key(id).await, 404, "not_found");
        assert_eq!(admin.get_key(id).await.unwrap().value.state, "enabled", "a refused change changed {id}");
    }

    let listed = alice_client.list_keys(&ListKeys::default()).await.unwrap().keys;
    assert!(listed.iter().all(|k| k.owner.id == alice.id || k.owner.id == pay.id), "{listed:?}");
    assert_eq!(listed.len(), 3, "alice's own key and pay-bot's two: {listed:?}");
    let in_payments =
        alice_client.list_keys(&ListKeys { namespace: Some("payments".into()), ..Default::default() }).await.unwrap();
    assert!(in_payments.keys.iter().all(|k| k.owner.id == pay.id) && in_payments.keys.len() == 2, "{in_payments:?}");
    let in_staging =
        alice_client.list_keys(&ListKeys { namespace: Some("staging".into()), ..Default::default() }).await.unwrap();
    assert!(in_staging.keys.is_empty(), "{in_staging:?}");

    // The same line runs through service accounts: she sees and creates only her namespace's.
    let visible: Vec<String> =
        alice_client.list_service_accounts().await.unwrap().service_accounts.into_iter().map(|s| s.name).collect();
    assert_eq!(visible, ["pay-bot"]);
    alice_client.create_service_account(&namespace_sa("pay-bot-2", "payments", "read")).await.unwrap();
    let refused = alice_client.create_service_account(&namespace_sa("stage-bot-2", "staging", "read")).await;
    expect_refused(refused, 403, "permission_denied");
}

/// IBM: a locked key refuses delete, disable and update with `409 key_locked`; a stale
/// `If-Match` is refused with `412 revision_mismatch`; neither changes anything.
#[tokio::test]
async fn a_locked_key_refuses_deletion_and_a_stale_revision_refuses_updates() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let created = admin.create_key(&new_key("prod")).await.unwrap().value;
    let id = &created.key.id;

    let locked = admin.lock_key(id).await.unwrap().value;
    assert!(locked.locked);
    expect_refused(admin.delete_key(id).await, 409, "key_locked");
    expect_refused(admin.disable_key(id).await, 409, "key_locked");
    let rename = wire::UpdateKeyRequest { name: Some("renamed".into()), ..Default::default() };
    expect_refused(admin.update_key(id, &rename, None).await, 409, "key_locked");
    let after = admin.get_key(id).await.unwrap();
    assert_eq!((after.value.state.as_str(), after.value.name.as_str()), ("enabled", "prod"));
    assert_eq!(after.revision, locked.revision, "a refused change moved the revision");
    assert!(verify(&admin, &created.secret).await.valid);

    let unlocked = admin.unlock_key(id).await.unwrap().value;
    assert!(!unlocked.locked);
    let seen = admin.get_key(id).await.unwrap().revision;
    let updated = admin.update_key(id, &rename, Some(seen)).await.unwrap().value;
    assert_eq!(updated.name, "renamed");
    assert!(updated.revision > seen);

    let stale = wire::UpdateKeyRequest { name: Some("stale".into()), description: Some("lost".into()) };
    expect_refused(admin.update_key(id, &stale, Some(seen)).await, 412, "revision_mismatch");
    let after = admin.get_key(id).await.unwrap();
    assert_eq!((after.value.name.as_str(), after.value.description.as_str()), ("renamed", ""));
    assert_eq!(after.revision, updated.revision);

    admin.delete_key(id).await.unwrap();
    assert_invalid(&admin, &created.secret, "deleted").await;
}

/// 10 live keys per user and 20 per service account; an 11th (21st) is `409 limit_exceeded`;
/// a deleted key frees its slot.
#[tokio::test]
async fn users_hold_ten_keys_and_service_accounts_twenty() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    // A user mints its own keys (its first by enrolling); an admin those of a service account.
    let (user, user_secret) = user_with_key(&admin, "dev", "developer").await;
    let dev = cluster.client_as(&user_secret);
    let sa = admin.create_service_account(&account_sa("batch", "developer")).await.unwrap().value;

    let cases = [
        (&dev, None, &user.id, 10),
        (&admin, Some(wire::OwnerRef { kind: wire::OwnerKind::ServiceAccount, id: sa.id.clone() }), &sa.id, 20),
    ];
    for (client, owner, id, limit) in cases {
        let listed = ListKeys { owner_id: Some(id.clone()), ..Default::default() };
        let mut keys: Vec<String> = admin.list_keys(&listed).await.unwrap().keys.into_iter().map(|k| k.id).collect();
        while keys.len() < limit {
            let req = wire::CreateKeyRequest { owner: owner.clone(), ..new_key(&format!("k{}", keys.len())) };
            keys.push(client.create_key(&req).await.unwrap().value.key.id);
        }
        let req = wire::CreateKeyRequest { owner: owner.clone(), ..new_key("over") };
        expect_refused(client.create_key(&req).await, 409, "limit_exceeded");
        let last = keys.last().expect("a key");
        expect_refused(client.rotate_key(last, &Default::default()).await, 409, "limit_exceeded");
        assert_eq!(admin.list_keys(&listed).await.unwrap().keys.len(), limit, "the refusals wrote nothing");

        client.delete_key(last).await.unwrap();
        client.create_key(&req).await.expect("a deleted key frees its slot");
    }
}

/// With key creation switched off, creating and rotating are `409 creation_disabled`, and the
/// keys that exist keep verifying; switched on again, creation works.
#[tokio::test]
async fn switching_off_key_creation_keeps_existing_keys_working() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let existing = admin.create_key(&new_key("existing")).await.unwrap().value;

    let off = wire::UpdateSettingsRequest { key_creation_enabled: Some(false), ..Default::default() };
    let settings = admin.update_settings(&off).await.unwrap().value;
    assert!(!settings.key_creation_enabled);
    expect_refused(admin.create_key(&new_key("new")).await, 409, "creation_disabled");
    expect_refused(admin.rotate_key(&existing.key.id, &Default::default()).await, 409, "creation_disabled");
    assert!(verify(&admin, &existing.secret).await.valid);
    assert!(verify(&admin, cluster.admin_key()).await.valid);

    let on = wire::UpdateSettingsRequest { key_creation_enabled: Some(true), ..Default::default() };
    admin.update_settings(&on).await.unwrap();
    admin.create_key(&new_key("new")).await.expect("creation is back on");
}

/// A key created to expire in 2 s verifies until then and is `expired` from its expiry on;
/// GET shows it expired, and the leader then writes its `expired` event (its revision moves).
#[tokio::test]
async fn an_expiring_key_is_refused_from_its_expiry_and_the_expiry_is_recorded() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let req = wire::CreateKeyRequest { expires_in: Some("2s".into()), ..new_key("short") };
    let created = admin.create_key(&req).await.unwrap().value;
    assert!(verify(&admin, &created.secret).await.valid, "valid before its expiry");

    poll("the key to verify as expired", BACKGROUND, async || {
        let answer = verify(&admin, &created.secret).await;
        match answer.code.as_deref() {
            Some("expired") => Ok(()),
            _ if answer.valid => Err("still valid".into()),
            _ => panic!("refused with another code before its expiry: {answer:?}"),
        }
    })
    .await;
    assert_eq!(admin.get_key(&created.key.id).await.unwrap().value.state, "expired");
    poll("the leader to record the expiry", BACKGROUND, async || {
        let key = admin.get_key(&created.key.id).await.map_err(|e| e.to_string())?;
        if key.revision > created.key.revision {
            Ok(())
        } else {
            Err(format!("revision still {}", key.revision))
        }
    })
    .await;
}

/// A verification shows up as the key's `last_used_at` once the batch is written (every 2 s),
/// without moving its revision.
#[tokio::test]
async fn last_use_shows_after_a_verification() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let created = admin.create_key(&new_key("used")).await.unwrap().value;
    assert_eq!(created.key.last_used_at, None);
    assert!(verify(&admin, &created.secret).await.valid);

    let used = poll("last_used_at to be set", BACKGROUND, async || {
        let key = admin.get_key(&created.key.id).await.map_err(|e| e.to_string())?.value;
        key.last_used_at.clone().map(|_| key).ok_or_else(|| "not yet".to_string())
    })
    .await;
    assert!(used.last_used_at.unwrap() >= used.created_at);
    assert_eq!(used.revision, created.key.revision, "use is not a state change");
}

/// A `read` user lists and reads only its own keys; another's key is not found, and it cannot
/// create keys for anyone else.
#[tokio::test]
async fn a_read_user_sees_only_its_own_keys() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_key(&new_key("admin's")).await.unwrap();
    let (reader, secret) = user_with_key(&admin, "reader", "read").await;
    let (other, _) = user_with_key(&admin, "other", "developer").await;
    let reader_client = cluster.client_as(&secret);
    reader_client.create_key(&new_key("mine")).await.expect("a read user creates its own keys");

    let listed = reader_client.list_keys(&ListKeys::default()).await.unwrap().keys;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|k| k.owner.id == reader.id), "{listed:?}");

    let admin_key = verify(&admin, cluster.admin_key()).await.key_id.unwrap();
    expect_refused(reader_client.get_key(&admin_key).await, 404, "not_found");
    expect_refused(reader_client.disable_key(&admin_key).await, 404, "not_found");
    let for_other = wire::CreateKeyRequest {
        owner: Some(wire::OwnerRef { kind: wire::OwnerKind::User, id: other.id.clone() }),
        ..new_key("sneaky")
    };
    expect_refused(reader_client.create_key(&for_other).await, 403, "permission_denied");
    let users: Vec<String> = reader_client.list_users().await.unwrap().users.into_iter().map(|u| u.id).collect();
    assert_eq!(users, std::slice::from_ref(&reader.id));
    expect_refused(reader_client.get_user(&other.id).await, 404, "not_found");
}

/// Verification with a permission: granted → valid with the effective permissions; not
/// granted → `forbidden`, still naming the key and its identity (a service account as such).
/// A key's scope narrows what it may do.
#[tokio::test]
async fn verification_checks_permissions_and_names_the_key_when_forbidden() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    admin.create_namespace("payments").await.unwrap();
    let (dev, dev_secret) = user_with_key(&admin, "dev", "developer").await;
    let (pay, pay_secret) = service_account_with_key(&admin, namespace_sa("pay-bot", "payments", "write")).await;

    let answer = verify_for(&admin, &dev_secret, "account:write").await;
    assert!(answer.valid, "{answer:?}");
    assert_eq!(answer.permissions.as_deref(), Some(&["account:write".to_string(), "account:read".to_string()][..]));
    let forbidden = verify_for(&admin, &dev_secret, "account:admin").await;
    assert_eq!((forbidden.valid, forbidden.code.as_deref()), (false, Some("forbidden")), "{forbidden:?}");
    assert_eq!(forbidden.key_id, answer.key_id);
    assert_eq!(forbidden.identity.map(|i| (i.kind, i.id)), Some((wire::OwnerKind::User, dev.id.clone())));

    let answer = verify_for(&admin, &pay_secret, "namespace:payments:write").await;
    assert!(answer.valid, "{answer:?}");
    assert_eq!(answer.identity.as_ref().map(|i| i.kind), Some(wire::OwnerKind::ServiceAccount));
    for not_granted in ["namespace:payments:admin", "namespace:staging:read", "account:read"] {
        let answer = verify_for(&admin, &pay_secret, not_granted).await;
        assert_eq!(answer.code.as_deref(), Some("forbidden"), "{not_granted}: {answer:?}");
        assert!(answer.key_id.is_some(), "{answer:?}");
        let identity = answer.identity.expect("a forbidden answer names the identity");
        assert_eq!(
            (identity.kind, identity.id.as_str(), identity.name.as_str()),
            (wire::OwnerKind::ServiceAccount, pay.id.as_str(), "pay-bot")
        );
    }

    // A key of the developer scoped to reading payments: nothing more, whatever dev may do.
    let scope = wire::KeyScope::Namespaces([("payments".to_string(), "read".to_string())].into());
    let scoped = wire::CreateKeyRequest { scope: Some(scope.clone()), ..new_key("scoped") };
    let scoped = cluster.client_as(&dev_secret).create_key(&scoped).await.unwrap().value;
    assert_eq!(scoped.key.scope, Some(scope));
    let answer = verify_for(&admin, &scoped.secret, "namespace:payments:read").await;
    assert!(answer.valid, "{answer:?}");
    assert_eq!(answer.permissions.as_deref(), Some(&["namespace:payments:read".to_string()][..]));
    for not_granted in ["namespace:payments:write", "account:read"] {
        let answer = verify_for(&admin, &scoped.secret, not_granted).await;
        assert_eq!(answer.code.as_deref(), Some("forbidden"), "{not_granted}: {answer:?}");
    }
}

/// Disabling a user makes every key of it `identity_disabled` (and useless for the API);
/// enabling it brings them back. The same holds for a service account.
#[tokio::test]
async fn a_disabled_identity_fails_verification() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let (dev, secret) = user_with_key(&admin, "dev", "developer").await;
    let (sa, sa_secret) = service_account_with_key(&admin, account_sa("bot", "read")).await;
    assert!(verify(&admin, &secret).await.valid);

    assert_eq!(admin.disable_user(&dev.id).await.unwrap().value.state, "disabled");
    assert_invalid(&admin, &secret, "identity_disabled").await;
    expect_refused(cluster.client_as(&secret).list_keys(&ListKeys::default()).await, 401, "unauthenticated");
    admin.enable_user(&dev.id).await.unwrap();
    assert!(verify(&admin, &secret).await.valid);

    admin.disable_service_account(&sa.id).await.unwrap();
    assert_invalid(&admin, &sa_secret, "identity_disabled").await;
    admin.enable_service_account(&sa.id).await.unwrap();
    assert!(verify(&admin, &sa_secret).await.valid);
}
