//! Webhooks decided at apply time: who may make and change them, what is validated, and the
//! delivery records that move a webhook's cursor (each event's delivery recorded once).

mod common;

use common::{rejected, World};
use keyledger_model::webhook::{AttemptResult, Delivery, DeliveryReport, NewWebhook, WebhookEventType};
use keyledger_model::{Command, EventBody, RejectCode, Role, Span, State, WebhookId};

fn new_webhook(world: &mut World, url: &str, types: &[WebhookEventType]) -> NewWebhook {
    NewWebhook {
        id: WebhookId::generate(world.now, &mut world.rng),
        url: url.to_string(),
        event_types: types.to_vec(),
        description: "ops channel".into(),
        secret_nonce: [7; 16],
    }
}

fn delivered(position: u64, attempts: u32) -> Delivery {
    Delivery {
        position,
        event_type: WebhookEventType::KeyCreated,
        attempts,
        last: AttemptResult::Status(204),
        at: keyledger_model::Timestamp(0),
    }
}

fn record(world: &mut World, webhook: WebhookId, deliveries: &[Delivery]) -> usize {
    let reports = deliveries.iter().map(|d| DeliveryReport { webhook, delivery: *d }).collect();
    world.as_system(Command::RecordWebhookDeliveries(reports)).expect("the cluster records deliveries")
}

#[test]
fn owners_and_admins_make_webhooks_and_others_may_not() {
    let mut world = World::bootstrap(901);
    let hook = new_webhook(&mut world, "https://example.com/hook", &[WebhookEventType::KeyCreated]);
    let id = hook.id;
    assert_eq!(world.owner_does(Command::CreateWebhook(hook)), Ok(1));
    let webhook = world.state.webhook(&id).unwrap().clone();
    assert_eq!(webhook.cursor, world.state.head().seq, "deliveries start after the webhook's creation");
    assert_eq!(webhook.account, world.account);

    let admin = world.new_user("ada", Role::Admin);
    let (admin_key, _) = world.key_for(keyledger_model::Owner::User(admin), "ada-key", None);
    let hook = new_webhook(&mut world, "https://example.com/other", &[WebhookEventType::KeyLeaked]);
    assert_eq!(world.as_key(admin_key, Command::CreateWebhook(hook)), Ok(1));

    let developer = world.new_user("dev", Role::Developer);
    let (developer_key, _) = world.key_for(keyledger_model::Owner::User(developer), "dev-key", None);
    let hook = new_webhook(&mut world, "https://example.com/dev", &[WebhookEventType::KeyCreated]);
    assert_eq!(rejected(world.as_key(developer_key, Command::CreateWebhook(hook))), RejectCode::PermissionDenied);
    assert_eq!(rejected(world.as_key(developer_key, Command::DeleteWebhook(id))), RejectCode::PermissionDenied);
    assert_eq!(rejected(world.as_system(Command::DeleteWebhook(id))), RejectCode::PermissionDenied);

    // Another account's owner does not see it.
    let other = world.new_account("acme");
    assert_eq!(rejected(world.as_key(other.owner_key, Command::DeleteWebhook(id))), RejectCode::NotFound);
    let rotate = Command::RotateWebhookSecret { webhook: id, secret_nonce: [9; 16] };
    assert_eq!(rejected(world.as_key(other.owner_key, rotate.clone())), RejectCode::NotFound);

    assert_eq!(world.owner_does(rotate), Ok(1));
    assert_eq!(world.state.webhook(&id).unwrap().secret_nonce, [9; 16]);
    assert_eq!(world.owner_does(Command::DeleteWebhook(id)), Ok(1));
    assert!(world.state.webhook(&id).is_none());
    assert_eq!(rejected(world.owner_does(Command::DeleteWebhook(id))), RejectCode::NotFound);
}

#[test]
fn a_webhook_is_validated() {
    let mut world = World::bootstrap(902);
    let refused = |world: &mut World, hook: NewWebhook| rejected(world.owner_does(Command::CreateWebhook(hook)));
    for url in ["ftp://example.com/", "https://", "https://a b/", "https://user@example.com/", "example.com"] {
        let hook = new_webhook(&mut world, url, &[WebhookEventType::KeyCreated]);
        assert_eq!(refused(&mut world, hook), RejectCode::InvalidArgument, "{url}");
    }
    let hook = new_webhook(&mut world, "https://example.com/", &[]);
    assert_eq!(refused(&mut world, hook), RejectCode::InvalidArgument, "no event type");
    let mut hook = new_webhook(&mut world, "https://example.com/", &[WebhookEventType::KeyCreated]);
    hook.description = "\u{7}".into();
    assert_eq!(refused(&mut world, hook), RejectCode::InvalidArgument, "control characters");

    // Repeats are folded, and the types kept sorted.
    let hook = new_webhook(
        &mut world,
        "https://example.com/",
        &[WebhookEventType::KeyLeaked, WebhookEventType::KeyCreated, WebhookEventType::KeyLeaked],
    );
    let id = hook.id;
    world.owner_does(Command::CreateWebhook(hook.clone())).unwrap();
    assert_eq!(
        world.state.webhook(&id).unwrap().event_types,
        [WebhookEventType::KeyCreated, WebhookEventType::KeyLeaked]
    );
    assert_eq!(refused(&mut world, hook), RejectCode::Conflict, "the same id twice");

    for _ in 1..keyledger_model::webhook::MAX_WEBHOOKS_PER_ACCOUNT {
        let hook = new_webhook(&mut world, "https://example.com/", &[WebhookEventType::KeyCreated]);
        world.owner_does(Command::CreateWebhook(hook)).unwrap();
    }
    let hook = new_webhook(&mut world, "https://example.com/", &[WebhookEventType::KeyCreated]);
    assert_eq!(refused(&mut world, hook), RejectCode::LimitExceeded);
}

#[test]
fn recorded_deliveries_move_the_cursor_once_and_in_order() {
    let mut world = World::bootstrap(903);
    let hook = new_webhook(&mut world, "https://example.com/hook", &[WebhookEventType::KeyCreated]);
    let id = hook.id;
    world.owner_does(Command::CreateWebhook(hook)).unwrap();
    let start = world.state.webhook(&id).unwrap().cursor;
    let (_, _) = world.create("a", Span::days(30)).unwrap();
    let first = world.state.head().seq;
    let (_, _) = world.create("b", Span::days(30)).unwrap();
    let second = world.state.head().seq;
    assert!(first > start);

    // Only the cluster records deliveries.
    let reports = vec![DeliveryReport { webhook: id, delivery: delivered(first, 1) }];
    let as_owner = world.owner_does(Command::RecordWebhookDeliveries(reports));
    assert_eq!(rejected(as_owner), RejectCode::PermissionDenied);

    assert_eq!(record(&mut world, id, &[delivered(first, 1)]), 1);
    assert_eq!(world.state.webhook(&id).unwrap().cursor, first);
    // A delivery re-sent by a new leader and reported again is not recorded twice; one at or
    // below the cursor, beyond the head, or out of order is dropped.
    assert_eq!(record(&mut world, id, &[delivered(first, 2)]), 0);
    assert_eq!(record(&mut world, id, &[delivered(start, 1)]), 0);
    let beyond = world.state.head().seq + 5;
    assert_eq!(record(&mut world, id, &[delivered(beyond, 1)]), 0);
    assert_eq!(record(&mut world, id, &[delivered(second, 3), delivered(first, 1)]), 1);
    assert_eq!(world.state.webhook(&id).unwrap().cursor, second);
    let log: Vec<(u64, u32)> = world.state.webhook_deliveries(&id, None).map(|d| (d.position, d.attempts)).collect();
    assert_eq!(log, [(second, 3), (first, 1)], "newest first");
    assert_eq!(world.state.webhook_deliveries(&id, Some(second)).count(), 1, "paged by position");

    // Both deliveries sit in one `webhook_deliveries` event each, on the account's chain.
    let events: Vec<&EventBody> = world
        .ledger
        .iter()
        .map(|e| &e.event.body)
        .filter(|b| matches!(b, EventBody::WebhookDeliveries { .. }))
        .collect();
    assert_eq!(events.len(), 2);
    // A deleted webhook's deliveries are not recorded.
    world.owner_does(Command::DeleteWebhook(id)).unwrap();
    let head = world.state.head().seq;
    assert_eq!(record(&mut world, id, &[delivered(head, 1)]), 0);
    // The state rebuilt from the ledger is the same.
    assert_eq!(State::rebuild(&world.ledger), world.state);
}

#[test]
fn an_enabled_key_is_warned_once_per_expiry_within_the_window() {
    use keyledger_model::webhook::EXPIRY_WARNING_WINDOW;
    let mut world = World::bootstrap(904);
    let (key, _) = world.create("k", Span::days(30)).unwrap();
    let (disabled, _) = world.create("d", Span::days(3)).unwrap();
    world.owner_does(Command::DisableKey(disabled)).unwrap();
    let due = |world: &World| world.state.due_expiry_warnings(world.now, EXPIRY_WARNING_WINDOW, 100);
    assert!(due(&world).is_empty(), "30 days out, and a disabled key is not warned");
    // Early warnings proposed anyway are refused at apply time: nothing written.
    assert_eq!(world.as_system(Command::WarnExpiringKeys(vec![key, disabled])), Ok(0));
    assert_eq!(rejected(world.owner_does(Command::WarnExpiringKeys(vec![key]))), RejectCode::PermissionDenied);

    world.advance(24 * common::DAY);
    // The owner's bootstrap key (30 days too) is due as well; the disabled one has expired.
    let mut both = [world.owner_key, key];
    both.sort();
    assert_eq!(due(&world), both, "same expiry: in id order");
    assert_eq!(world.as_system(Command::WarnExpiringKeys(vec![key, key])), Ok(1));
    let expires_at = world.state.key(&key).unwrap().expires_at.unwrap();
    assert_eq!(world.state.expiry_warned(&key), Some(expires_at));
    assert!(matches!(
        world.ledger.last().unwrap().event.body,
        EventBody::KeyExpiringSoon { key: k, expires_at: at } if k == key && at == expires_at
    ));
    assert_eq!(due(&world), [world.owner_key], "once per expiry");
    assert_eq!(world.as_system(Command::WarnExpiringKeys(vec![key])), Ok(0));

    // A rotation gives the old key a new expiry (the grace): it is warned again.
    let (new, _) = world.new_key_for(None, "k2", None);
    world.owner_does(Command::RotateKey { key, new, grace: Span::days(1) }).unwrap();
    assert!(due(&world).contains(&key), "{:?}", due(&world));
    assert_eq!(world.as_system(Command::WarnExpiringKeys(vec![key])), Ok(1));
    // Expired: forgotten, so the state does not grow with every key ever warned of.
    world.advance(2 * common::DAY);
    let expired = world.state.due_expiries(world.now, 100);
    world.as_system(Command::ExpireKeys(expired)).unwrap();
    assert_eq!(world.state.expiry_warned(&key), None);
    assert_eq!(State::rebuild(&world.ledger), world.state);
}
