//! Last use recorded with a granularity (`domain.md`): one `used` event per key per period,
//! decided at apply time, whoever reports it and however often.

mod common;

use common::{World, HOUR};
use keyledger_model::{
    Command, EventBody, KeyId, LeakAction, LimitsPatch, RejectCode, Rejection, SettingsPatch, Span, Timestamp,
    UseRecord, DEFAULT_USAGE_GRANULARITY,
};

const MINUTE: i64 = 60_000;

fn used(key: KeyId, at: Timestamp) -> UseRecord {
    UseRecord { key, last_used_at: at, count: 1 }
}

fn report(world: &mut World, uses: Vec<UseRecord>) -> usize {
    world.as_system(Command::RecordUse(uses)).expect("the cluster may record use")
}

fn configure(granularity: Span) -> Command {
    Command::Configure {
        patch: SettingsPatch::default(),
        limits: LimitsPatch::default(),
        action_when_leaked: None,
        last_used_granularity: Some(granularity),
    }
}

#[test]
fn one_event_per_key_per_period_whoever_reports_it() {
    let mut world = World::bootstrap(401);
    let (key, _) = world.create("k", Span::days(30)).unwrap();
    assert_eq!(world.state.usage_granularity(), DEFAULT_USAGE_GRANULARITY);
    let t = world.now;
    // Three nodes report the key in the same period: the first report is written.
    assert_eq!(report(&mut world, vec![used(key, t)]), 1);
    assert_eq!(report(&mut world, vec![used(key, Timestamp(t.0 + 2_000))]), 0);
    assert_eq!(report(&mut world, vec![used(key, Timestamp(t.0 + HOUR - 1))]), 0);
    let record = world.state.key(&key).unwrap();
    assert_eq!((record.last_used_at, record.use_count), (Some(t), 1));
    // A whole period later, the next one is.
    assert_eq!(report(&mut world, vec![used(key, Timestamp(t.0 + HOUR))]), 1);
    assert_eq!(world.state.key(&key).unwrap().last_used_at, Some(Timestamp(t.0 + HOUR)));
    // One key twice in one report is one event.
    let later = Timestamp(t.0 + 3 * HOUR);
    assert_eq!(report(&mut world, vec![used(key, later), used(key, later)]), 1);
    let last = &world.ledger.last().unwrap().event.body;
    assert_eq!(*last, EventBody::KeyUsed { key, last_used_at: later, count: 1 });
}

#[test]
fn the_operator_sets_the_granularity_within_bounds() {
    let mut world = World::bootstrap(402);
    let (key, _) = world.create("k", Span::days(30)).unwrap();
    let t = world.now;
    assert_eq!(report(&mut world, vec![used(key, t)]), 1);

    for wrong in [Span(MINUTE - 1), Span(0), Span(7 * 24 * HOUR + 1)] {
        let refused = world.owner_does(configure(wrong)).unwrap_err();
        assert_eq!(refused.code, RejectCode::InvalidArgument, "{wrong:?}");
    }
    assert_eq!(world.owner_does(configure(Span(5 * MINUTE))), Ok(1));
    assert_eq!(world.owner_does(configure(Span(5 * MINUTE))), Ok(0), "unchanged: no event");
    let last = &world.ledger.last().unwrap().event;
    assert_eq!(last.body, EventBody::UsageGranularityChanged { granularity: Span(5 * MINUTE) });
    assert_eq!(world.state.usage_granularity(), Span(5 * MINUTE));
    assert_eq!(report(&mut world, vec![used(key, Timestamp(t.0 + 5 * MINUTE - 1))]), 0);
    assert_eq!(report(&mut world, vec![used(key, Timestamp(t.0 + 5 * MINUTE))]), 1);

    // Settings and the granularity change together, in one proposal.
    let both = Command::Configure {
        patch: SettingsPatch { max_keys_per_user: Some(12), ..Default::default() },
        limits: LimitsPatch::default(),
        action_when_leaked: Some(LeakAction::Delete),
        last_used_granularity: Some(Span(HOUR)),
    };
    assert_eq!(world.owner_does(both), Ok(3));
}

#[test]
fn only_the_operator_may_change_the_granularity() {
    let mut world = World::bootstrap(403);
    // Another account's owner: it is not theirs to set.
    let acme = world.new_account("acme");
    let refused: Rejection = world.as_key(acme.owner_key, configure(Span(10 * MINUTE))).unwrap_err();
    assert_eq!(refused.code, RejectCode::InvalidArgument);
    assert!(refused.message.contains("operator"), "{refused}");
    // An admin of `default` is not its owner.
    let admin = world.new_user("admin", keyledger_model::Role::Admin);
    let (admin_key, _) = world.key_for(keyledger_model::Owner::User(admin), "k", None);
    let refused = world.as_key(admin_key, configure(Span(10 * MINUTE))).unwrap_err();
    assert_eq!(refused.code, RejectCode::PermissionDenied);
    assert_eq!(world.state.usage_granularity(), DEFAULT_USAGE_GRANULARITY);
}

/// What a node's flusher does: verification notes use in the index, the scan collects the keys
/// that are due, and a written report makes them not due until the next period.
#[test]
fn the_scan_collects_due_uses_once_per_period() {
    let mut world = World::bootstrap(404);
    let (key, secret) = world.create("k", Span::days(30)).unwrap();
    // Never verified: never collected.
    world.create("idle", Span::days(30)).unwrap();
    let scan = |world: &World| {
        let mut out = Vec::new();
        let positions = world.state.usage_positions();
        // In two ranges, as the flusher scans a large index.
        world.state.due_uses(0..positions / 2, &mut out);
        world.state.due_uses(positions / 2..positions, &mut out);
        out
    };
    let verify = |world: &World, at: Timestamp| match world.state.verify(secret.expose(), at, None) {
        keyledger_model::Verdict::Valid(v) => v.note_use(at),
        other => panic!("{other:?}"),
    };
    assert!(scan(&world).is_empty());
    let t = Timestamp(world.now.0 / 1000 * 1000 + 1000);
    for _ in 0..3 {
        verify(&world, t);
    }
    let due = scan(&world);
    assert_eq!(due, vec![UseRecord { key, last_used_at: t, count: 1 }]);
    assert_eq!(scan(&world), due, "due until it is written (a failed write loses nothing)");
    assert_eq!(report(&mut world, due), 1);
    assert!(scan(&world).is_empty(), "written: not due");
    // Within the period: noted, not due.
    verify(&world, Timestamp(t.0 + 1_000));
    verify(&world, Timestamp(t.0 + HOUR - 1_000));
    assert!(scan(&world).is_empty());
    // A period on, it is.
    verify(&world, Timestamp(t.0 + HOUR));
    assert_eq!(scan(&world), vec![UseRecord { key, last_used_at: Timestamp(t.0 + HOUR), count: 1 }]);
}
