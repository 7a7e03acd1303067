//! The checks after a run, on the recorded history and the nodes' ledgers:
//!
//! - every node holds the same ledger, byte for byte, and it verifies offline;
//! - every acknowledged write is in it (found by its request id), and no request that was
//!   refused or never proposed wrote anything;
//! - each key's history is linearizable against [`KeyModel`];
//! - the log's order respects real time: a write acknowledged before another was sent has the
//!   lower index, across all keys;
//! - the revocation barrier: a verification with `min_index` at or after an acknowledged
//!   disable, delete or rotation of the key never answered valid.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use keyledger_client::{ExportFormat, ExportRequest};
use keyledger_model::Timestamp;

use crate::cluster::{Cluster, POLL_EVERY};
use crate::history::{Outcome, Record};
use crate::lincheck::{check, Operation, Verdict};
use crate::model::{KeyModel, KeyOp, KeyRet};

/// Search steps the checker may take for one key before it gives up (and says so).
pub const MAX_STEPS_PER_KEY: u64 = 5_000_000;

/// How long the nodes may take to agree on one ledger after the faults end.
const CONVERGE: Duration = Duration::from_secs(90);

/// What the checks found.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<String>,
    /// Checks that could not conclude (the search's budget ran out): never a pass.
    pub inconclusive: Vec<String>,
    pub notes: Vec<String>,
}

/// Ledger figures for the summary.
#[derive(Debug, Default)]
pub struct LedgerStats {
    pub events: u64,
    pub head_hash: String,
    pub acknowledged_found: u64,
    pub acknowledged_no_ops: u64,
    pub maybe_applied: u64,
    pub maybe_not_applied: u64,
}

/// Linearizability figures for the summary.
#[derive(Debug, Default)]
pub struct LinStats {
    pub keys: usize,
    pub operations: usize,
    pub maybe_operations: usize,
    pub longest_history: usize,
}

/// Waits until every node reports the same ledger head and serves the same export; checks it
/// offline; returns it.
pub async fn same_ledger(cluster: &Cluster, findings: &mut Findings) -> Option<Vec<u8>> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let last = match exports_if_equal(cluster).await {
            Ok(export) => {
                let options = keyledger_audit::verify::Options {
                    expect: keyledger_audit::verify::Expect::Complete,
                    trusted: None,
                    whole_cluster: true,
                };
                if let Err(e) = keyledger_audit::verify::verify_export(&export[..], &options) {
                    findings.violations.push(format!("the ledger does not verify offline: {e}"));
                }
                return Some(export);
            }
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            findings.violations.push(format!("the nodes' ledgers did not converge within {CONVERGE:?}: {last}"));
            return None;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn exports_if_equal(cluster: &Cluster) -> Result<Vec<u8>, String> {
    let mut heads = Vec::new();
    for id in cluster.ids() {
        heads.push(cluster.ledger_head(id).await.map_err(|e| format!("node {id}: {e:#}"))?);
    }
    if heads.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("heads differ: {heads:?}"));
    }
    let mut exports: Vec<Vec<u8>> = Vec::new();
    for id in cluster.ids() {
        let client = cluster.client(id).map_err(|e| e.to_string())?;
        let request = ExportRequest { scope: Some("cluster".into()), ..ExportRequest::new(ExportFormat::Jsonl) };
        let mut export = client.audit_export(&request).await.map_err(|e| format!("node {id}: {e}"))?;
        let mut bytes = Vec::new();
        while let Some(chunk) = export.chunk().await.map_err(|e| format!("node {id}: {e}"))? {
            bytes.extend_from_slice(&chunk);
        }
        exports.push(bytes);
    }
    for (i, other) in exports.iter().enumerate().skip(1) {
        if *other != exports[0] {
            let line = first_difference(&exports[0], other);
            return Err(format!("node 1's and node {}'s exports differ from line {line} (heads {heads:?})", i + 1));
        }
    }
    Ok(exports.swap_remove(0))
}

fn first_difference(a: &[u8], b: &[u8]) -> usize {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    a.lines().zip(b.lines()).take_while(|(x, y)| x == y).count() + 1
}

fn expected_event(op: KeyOp) -> &'static str {
    match op {
        KeyOp::Create => "created",
        KeyOp::Enable => "enabled",
        KeyOp::Disable => "disabled",
        KeyOp::Rotate => "rotated",
        KeyOp::Delete => "deleted",
        KeyOp::Verify => "",
    }
}

/// Every acknowledged write is in the ledger; nothing refused or unproposed is.
pub fn acknowledged_writes(records: &[Record], export: &[u8], findings: &mut Findings) -> LedgerStats {
    let mut stats = LedgerStats::default();
    // request id -> (event type, key id); key id -> event types.
    let mut by_request: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut by_key: HashMap<String, HashSet<String>> = HashMap::new();
    let mut latest_time: Option<Timestamp> = None;
    for line in String::from_utf8_lossy(export).lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            findings.violations.push(format!("an export line is not JSON: {line}"));
            continue;
        };
        stats.events += 1;
        stats.head_hash = event["hash"].as_str().unwrap_or_default().to_string();
        // Ledger time never runs backwards (the harness's first finding was a proposal decided
        // at a time before the event preceding it).
        if let Some(time) = event["time"].as_str().and_then(|t| Timestamp::parse_rfc3339(t).ok()) {
            if latest_time.is_some_and(|latest| time < latest) {
                findings.violations.push(format!(
                    "ledger time goes backwards at seq {}: {time} after {}",
                    event["seq"],
                    latest_time.map(|t| t.to_string()).unwrap_or_default()
                ));
            }
            latest_time = Some(latest_time.map_or(time, |latest| latest.max(time)));
        }
        let kind = event["type"].as_str().unwrap_or_default().to_string();
        let key = event["data"]["key_id"].as_str().unwrap_or_default().to_string();
        let request = event["request_id"].as_str().unwrap_or_default().to_string();
        by_key.entry(key.clone()).or_default().insert(kind.clone());
        by_request.entry(request).or_default().push((kind, key));
    }
    for r in records.iter().filter(|r| r.op != KeyOp::Verify) {
        let wrote = by_request.get(&r.request_id);
        match &r.outcome {
            Outcome::Answered { answer: KeyRet::Done, index } => {
                let expected = (expected_event(r.op).to_string(), r.key_id.clone());
                if wrote.is_some_and(|events| events.contains(&expected)) {
                    stats.acknowledged_found += 1;
                    continue;
                }
                // A disable of a disabled key, an enable of an enabled one, a delete of a
                // deleted one: acknowledged, and rightly nothing written.
                let types = by_key.get(&r.key_id);
                let no_op = match r.op {
                    KeyOp::Enable => true,
                    KeyOp::Disable | KeyOp::Delete => types.is_some_and(|t| t.contains(expected_event(r.op))),
                    _ => false,
                };
                if no_op && wrote.is_none() {
                    stats.acknowledged_no_ops += 1;
                } else {
                    findings.violations.push(format!(
                        "acknowledged {:?} of {} (request {}, index {index:?}) is not in the ledger; \
                         the request wrote {wrote:?}",
                        r.op, r.key_id, r.request_id
                    ));
                }
            }
            Outcome::Answered { .. } | Outcome::Failed { .. } => {
                if let Some(events) = wrote {
                    findings.violations.push(format!(
                        "{:?} of {} (request {}) ended {:?} yet wrote {events:?}",
                        r.op, r.key_id, r.request_id, r.outcome
                    ));
                }
            }
            Outcome::Maybe { .. } => {
                if wrote.is_some() {
                    stats.maybe_applied += 1;
                } else {
                    stats.maybe_not_applied += 1;
                }
            }
        }
    }
    stats
}

/// Across all keys: a write acknowledged before another write was sent committed at a lower
/// index (the log's order respects real time). Returns how many writes were compared.
pub fn index_order(records: &[Record], findings: &mut Findings) -> usize {
    // Each acknowledged proposal, once (a rotation's new key shares the rotation's answer).
    let mut acked: Vec<(&Record, u64)> = records
        .iter()
        .filter(|r| r.rotated_from.is_none())
        .filter_map(|r| match &r.outcome {
            Outcome::Answered { answer: KeyRet::Done, index: Some(index) } => Some((r, *index)),
            _ => None,
        })
        .collect();
    let mut by_return = acked.clone();
    by_return.sort_by_key(|(r, _)| r.returned_us);
    acked.sort_by_key(|(r, _)| r.called_us);
    // Walk the writes in the order they were sent, keeping the highest index among those
    // acknowledged before the current one was sent.
    let (mut done, mut highest): (usize, Option<(&Record, u64)>) = (0, None);
    for (later, index) in &acked {
        while done < by_return.len() && by_return[done].0.returned_us < later.called_us {
            if highest.is_none_or(|(_, h)| by_return[done].1 > h) {
                highest = Some(by_return[done]);
            }
            done += 1;
        }
        if let Some((earlier, at)) = highest {
            if *index <= at {
                findings.violations.push(format!(
                    "{:?} of {} (request {}) committed at index {index}, yet {:?} of {} (request {}) was \
                     acknowledged at index {at} before it was sent",
                    later.op, later.key_id, later.request_id, earlier.op, earlier.key_id, earlier.request_id
                ));
            }
        }
    }
    acked.len()
}

/// The linearizability check, key by key.
pub fn linearizable(records: &[Record], findings: &mut Findings) -> LinStats {
    let mut stats = LinStats::default();
    let mut by_key: BTreeMap<usize, Vec<&Record>> = BTreeMap::new();
    for r in records {
        let Some(key) = r.key else { continue };
        if r.min_index.is_some() || matches!(r.outcome, Outcome::Failed { .. }) {
            continue;
        }
        by_key.entry(key).or_default().push(r);
    }
    for (key, mut ops) in by_key {
        ops.sort_by_key(|r| r.called_us);
        let history: Vec<Operation<KeyOp, KeyRet>> = ops
            .iter()
            .map(|r| Operation {
                op: r.op,
                call: r.called_us,
                ret: match &r.outcome {
                    Outcome::Answered { answer, .. } => Some((r.returned_us, answer.clone())),
                    _ => None,
                },
            })
            .collect();
        stats.keys += 1;
        stats.operations += history.len();
        stats.maybe_operations += history.iter().filter(|o| o.ret.is_none()).count();
        stats.longest_history = stats.longest_history.max(history.len());
        match check(&KeyModel, &history, MAX_STEPS_PER_KEY) {
            Verdict::Linearizable { .. } => {}
            Verdict::NotLinearizable { longest } => {
                let mut text = format!(
                    "key #{key} ({}): history not linearizable; the longest linearizable prefix is {:?}, \
                     after it no operation fits. The history:\n",
                    ops[0].key_id,
                    longest.iter().map(|i| format!("#{i}")).collect::<Vec<_>>()
                );
                for (i, r) in ops.iter().enumerate() {
                    let _ = writeln!(
                        text,
                        "  #{i} {:?} on node {} [{} .. {}] us {:?} (request {})",
                        r.op, r.node, r.called_us, r.returned_us, r.outcome, r.request_id
                    );
                }
                findings.violations.push(text);
            }
            Verdict::GaveUp { steps } => findings.inconclusive.push(format!(
                "key #{key} ({}): the search gave up after {steps} steps ({} operations)",
                ops[0].key_id,
                history.len()
            )),
        }
    }
    stats
}

/// The ledger seq of the last event each request wrote (requests that wrote nothing are absent).
pub fn seq_by_request(export: &[u8]) -> HashMap<String, u64> {
    let mut seqs = HashMap::new();
    for line in String::from_utf8_lossy(export).lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if let (Some(request), Some(seq)) = (event["request_id"].as_str(), event["seq"].as_u64()) {
            seqs.insert(request.to_string(), seq);
        }
    }
    seqs
}

/// Did the acknowledged `enable` (at log index `enable_at`) take effect after the acknowledged
/// `disable` (at `disable_at`)? The leader puts writes that arrive together into one Raft entry,
/// so both may share an index; their order inside it is the ledger's (`seqs`). A write that
/// changed nothing wrote no event, and that tells its place too: a disable that found the key
/// disabled came after an enable of the same entry that wrote one (before it, the key would have
/// been enabled), and an enable that found the key enabled came before such a disable.
fn enabled_after(
    enable: &Record,
    enable_at: u64,
    disable: &Record,
    disable_at: u64,
    seqs: &HashMap<String, u64>,
) -> bool {
    if enable_at != disable_at {
        return enable_at > disable_at;
    }
    match (seqs.get(&enable.request_id), seqs.get(&disable.request_id)) {
        (Some(enable_seq), Some(disable_seq)) => enable_seq > disable_seq,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        // Neither wrote (or the ledger could not be read): their order is not known.
        (None, None) => true,
    }
}

/// The revocation barrier. Returns how many barrier verifications answered. `seqs` (from
/// [`seq_by_request`]) orders writes that share a log index.
pub fn revocation_barrier(records: &[Record], seqs: &HashMap<String, u64>, findings: &mut Findings) -> u64 {
    let mut answered = 0;
    for v in records.iter().filter(|r| r.min_index.is_some()) {
        let (Some(key), Some(min_index)) = (v.key, v.min_index) else { continue };
        let Outcome::Answered { answer, .. } = &v.outcome else { continue };
        answered += 1;
        let same_key = || records.iter().filter(move |r| r.key == Some(key) && r.min_index.is_none());
        // The acknowledged revocations at or before min_index.
        let revoked: Vec<(&Record, u64)> = same_key()
            .filter_map(|r| match (&r.outcome, r.op) {
                (
                    Outcome::Answered { answer: KeyRet::Done, index: Some(at) },
                    KeyOp::Disable | KeyOp::Delete | KeyOp::Rotate,
                ) if *at <= min_index => Some((r, *at)),
                _ => None,
            })
            .collect();
        match answer {
            KeyRet::Valid => {
                let any_final = revoked.iter().any(|(r, _)| r.op != KeyOp::Disable);
                // A delete or rotation is final; a disable can be undone by an enable that
                // committed after it, or one whose outcome is unknown and was sent in time.
                let re_enabled = |disable: &Record, disabled_at: u64| {
                    same_key().any(|r| {
                        r.op == KeyOp::Enable
                            && match &r.outcome {
                                Outcome::Answered { answer: KeyRet::Done, index: Some(at) } => {
                                    enabled_after(r, *at, disable, disabled_at, seqs)
                                }
                                Outcome::Maybe { .. } => r.called_us < v.returned_us,
                                _ => false,
                            }
                    })
                };
                let broken = any_final || revoked.iter().any(|(r, at)| r.op == KeyOp::Disable && !re_enabled(r, *at));
                if broken {
                    let revoked: Vec<(KeyOp, u64)> = revoked.iter().map(|(r, at)| (r.op, *at)).collect();
                    findings.violations.push(format!(
                        "revocation barrier: {} verified valid on node {} with min_index {min_index} after \
                         acknowledged {revoked:?} (request {})",
                        v.key_id, v.node, v.request_id
                    ));
                }
            }
            KeyRet::Invalid(code) if code == "not_found" => findings.violations.push(format!(
                "revocation barrier: {} was not found on node {} with min_index {min_index}, after its creation \
                 (request {})",
                v.key_id, v.node, v.request_id
            )),
            KeyRet::Invalid(_) => {}
            other => findings.violations.push(format!(
                "revocation barrier: verifying {} on node {} answered {other:?} (request {})",
                v.key_id, v.node, v.request_id
            )),
        }
    }
    answered
}

/// Counts by operation and outcome, for the summary: `disable ok`, `verify invalid:disabled`, ...
pub fn tally(records: &[Record]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for r in records {
        let op = match (r.op, r.min_index, r.rotated_from) {
            (KeyOp::Verify, Some(_), _) => "verify(min_index)".to_string(),
            (KeyOp::Create, _, Some(_)) => "create(by rotate)".to_string(),
            (op, _, _) => format!("{op:?}").to_lowercase(),
        };
        let outcome = match &r.outcome {
            Outcome::Answered { answer: KeyRet::Done, .. } => "ok".to_string(),
            Outcome::Answered { answer: KeyRet::Valid, .. } => "valid".to_string(),
            Outcome::Answered { answer: KeyRet::Invalid(code), .. } => format!("invalid:{code}"),
            Outcome::Answered { answer: KeyRet::Refused(code), .. } => format!("refused:{code}"),
            Outcome::Failed { .. } => "failed".to_string(),
            Outcome::Maybe { .. } => "maybe".to_string(),
        };
        *counts.entry(format!("{op} {outcome}")).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: usize, op: KeyOp, called: u64, returned: u64, outcome: Outcome) -> Record {
        Record {
            worker: 0,
            key: Some(key),
            key_id: format!("key_{key}"),
            node: 1,
            op,
            min_index: None,
            rotated_from: None,
            request_id: format!("r{called}"),
            called_us: called,
            returned_us: returned,
            outcome,
        }
    }

    fn done(index: u64) -> Outcome {
        Outcome::Answered { answer: KeyRet::Done, index: Some(index) }
    }

    fn answered(answer: KeyRet) -> Outcome {
        Outcome::Answered { answer, index: None }
    }

    fn barrier(key: usize, min_index: u64, called: u64, answer: KeyRet) -> Record {
        Record { min_index: Some(min_index), ..rec(key, KeyOp::Verify, called, called + 1, answered(answer)) }
    }

    #[test]
    fn the_barrier_catches_a_valid_answer_after_a_disable() {
        let records = vec![rec(0, KeyOp::Create, 0, 1, done(5)), rec(0, KeyOp::Disable, 2, 3, done(9))];
        let mut findings = Findings::default();
        let mut with = records.clone();
        with.push(barrier(0, 9, 4, KeyRet::Valid));
        assert_eq!(revocation_barrier(&with, &HashMap::new(), &mut findings), 1);
        assert_eq!(findings.violations.len(), 1, "{findings:?}");

        // Invalid is right; valid with an index before the disable is allowed.
        let mut findings = Findings::default();
        let mut with = records.clone();
        with.push(barrier(0, 9, 4, KeyRet::Invalid("disabled".into())));
        with.push(barrier(0, 8, 4, KeyRet::Valid));
        revocation_barrier(&with, &HashMap::new(), &mut findings);
        assert!(findings.violations.is_empty(), "{findings:?}");

        // An enable acknowledged after the disable, or one of unknown outcome sent in time,
        // may have made it valid again.
        for enable in
            [rec(0, KeyOp::Enable, 3, 4, done(10)), rec(0, KeyOp::Enable, 3, 30, Outcome::Maybe { why: String::new() })]
        {
            let mut findings = Findings::default();
            let mut with = records.clone();
            with.push(enable);
            with.push(barrier(0, 9, 5, KeyRet::Valid));
            revocation_barrier(&with, &HashMap::new(), &mut findings);
            assert!(findings.violations.is_empty(), "{findings:?}");
        }

        // An enable before the disable excuses nothing, and a delete is final.
        let mut findings = Findings::default();
        let mut with = records.clone();
        with.push(rec(0, KeyOp::Enable, 1, 2, done(7)));
        with.push(rec(0, KeyOp::Delete, 10, 11, done(12)));
        with.push(rec(0, KeyOp::Enable, 11, 12, answered(KeyRet::Refused("conflict".into()))));
        with.push(barrier(0, 9, 5, KeyRet::Valid));
        with.push(barrier(0, 12, 13, KeyRet::Valid));
        revocation_barrier(&with, &HashMap::new(), &mut findings);
        assert_eq!(findings.violations.len(), 2, "{findings:?}");
    }

    #[test]
    fn ledger_time_going_backwards_is_caught() {
        let line = |seq: u64, time: &str| {
            format!(
                r#"{{"seq":{seq},"time":"{time}","type":"updated","data":{{}},"request_id":"r{seq}","hash":"h{seq}"}}"#
            )
        };
        let ordered =
            [line(1, "2026-11-23T10:00:00.100Z"), line(2, "2026-11-23T10:00:00.100Z"), line(3, "2026-11-23T10:00:01Z")];
        let mut findings = Findings::default();
        acknowledged_writes(&[], ordered.join("\n").as_bytes(), &mut findings);
        assert!(findings.violations.is_empty(), "{findings:?}");

        let backwards = [line(1, "2026-11-23T10:00:01Z"), line(2, "2026-11-23T10:00:00.999Z")];
        let mut findings = Findings::default();
        acknowledged_writes(&[], backwards.join("\n").as_bytes(), &mut findings);
        assert_eq!(findings.violations.len(), 1, "{findings:?}");
        assert!(findings.violations[0].contains("seq 2"), "{findings:?}");
    }

    /// Writes that arrive together share a Raft entry, so a disable and an enable can answer the
    /// same index; the ledger's order inside the entry decides whether the enable undid it.
    #[test]
    fn a_disable_and_an_enable_in_one_entry_are_ordered_by_the_ledger() {
        let records = vec![
            rec(0, KeyOp::Create, 0, 1, done(5)),
            rec(0, KeyOp::Disable, 2, 4, done(9)),
            rec(0, KeyOp::Enable, 3, 4, done(9)),
            barrier(0, 9, 5, KeyRet::Valid),
        ];
        let seqs = |disable: u64, enable: u64| HashMap::from([("r2".to_string(), disable), ("r3".to_string(), enable)]);
        for (order, violations) in [(seqs(20, 21), 0), (seqs(21, 20), 1)] {
            let mut findings = Findings::default();
            revocation_barrier(&records, &order, &mut findings);
            assert_eq!(findings.violations.len(), violations, "{order:?}: {findings:?}");
        }
        // A disable that wrote nothing found the key disabled: the enable of its entry came after.
        let only_enable_wrote = HashMap::from([("r3".to_string(), 20)]);
        let mut findings = Findings::default();
        revocation_barrier(&records, &only_enable_wrote, &mut findings);
        assert!(findings.violations.is_empty(), "{findings:?}");
        // An enable that wrote nothing found the key enabled: it came before the disable.
        let only_disable_wrote = HashMap::from([("r2".to_string(), 20)]);
        let mut findings = Findings::default();
        revocation_barrier(&records, &only_disable_wrote, &mut findings);
        assert_eq!(findings.violations.len(), 1, "{findings:?}");
    }

    #[test]
    fn lost_and_phantom_writes_are_caught() {
        let line = |seq: u64, kind: &str, key: &str, request: &str| {
            format!(
                r#"{{"seq":{seq},"type":"{kind}","data":{{"key_id":"{key}"}},"request_id":"{request}","hash":"h{seq}"}}"#
            )
        };
        let export =
            [line(1, "created", "key_0", "r0"), line(2, "disabled", "key_0", "r2"), line(3, "deleted", "key_0", "r9")]
                .join("\n");
        let records = vec![
            rec(0, KeyOp::Create, 0, 1, done(1)),
            rec(0, KeyOp::Disable, 2, 3, done(2)),
            // A second disable, acknowledged with nothing to do.
            rec(0, KeyOp::Disable, 4, 5, done(3)),
            // Refused, and nothing written: fine.
            rec(0, KeyOp::Rotate, 6, 7, answered(KeyRet::Refused("conflict".into()))),
            // Unknown outcome, and it was applied.
            rec(0, KeyOp::Delete, 9, 10, Outcome::Maybe { why: String::new() }),
        ];
        let mut findings = Findings::default();
        let stats = acknowledged_writes(&records, export.as_bytes(), &mut findings);
        assert!(findings.violations.is_empty(), "{findings:?}");
        assert_eq!(
            (stats.events, stats.acknowledged_found, stats.acknowledged_no_ops, stats.maybe_applied),
            (3, 2, 1, 1)
        );

        // An acknowledged rotation missing from the ledger, and a "failed" request that wrote.
        let more = vec![
            rec(0, KeyOp::Rotate, 20, 21, done(4)),
            rec(0, KeyOp::Delete, 9, 10, Outcome::Failed { why: "503 unavailable".into() }),
        ];
        let mut findings = Findings::default();
        acknowledged_writes(&more, export.as_bytes(), &mut findings);
        assert_eq!(findings.violations.len(), 2, "{findings:?}");
    }

    #[test]
    fn the_log_order_must_respect_real_time() {
        let ok = vec![
            rec(0, KeyOp::Create, 0, 1, done(5)),
            rec(1, KeyOp::Create, 2, 9, done(7)),
            // Overlaps the create of key 1: either order of indices is fine.
            rec(0, KeyOp::Disable, 3, 8, done(6)),
            rec(0, KeyOp::Enable, 10, 11, done(8)),
            // Not acknowledged: not compared.
            rec(1, KeyOp::Disable, 12, 13, Outcome::Maybe { why: String::new() }),
        ];
        let mut findings = Findings::default();
        assert_eq!(index_order(&ok, &mut findings), 4);
        assert!(findings.violations.is_empty(), "{findings:?}");

        // Sent after index 8 was acknowledged, committed before it.
        let mut bad = ok.clone();
        bad.push(rec(1, KeyOp::Delete, 12, 14, done(4)));
        let mut findings = Findings::default();
        index_order(&bad, &mut findings);
        assert_eq!(findings.violations.len(), 1, "{findings:?}");
        assert!(findings.violations[0].contains("index 8"), "{}", findings.violations[0]);
    }

    #[test]
    fn a_non_linearizable_key_is_reported_with_its_history() {
        let records = vec![
            rec(0, KeyOp::Create, 0, 1, done(1)),
            rec(0, KeyOp::Disable, 2, 3, done(2)),
            rec(0, KeyOp::Verify, 4, 5, answered(KeyRet::Valid)),
            rec(1, KeyOp::Create, 0, 1, done(3)),
            rec(1, KeyOp::Verify, 2, 3, answered(KeyRet::Valid)),
        ];
        let mut findings = Findings::default();
        let stats = linearizable(&records, &mut findings);
        assert_eq!((stats.keys, stats.operations), (2, 5));
        assert_eq!(findings.violations.len(), 1, "{findings:?}");
        assert!(findings.violations[0].contains("key_0"), "{}", findings.violations[0]);
    }
}
