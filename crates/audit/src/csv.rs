//! The CSV form of an export: one header line, then one row per event.

use keyledger_wire::AuditEvent;

/// The header line (without its line end) of a CSV export.
pub const CSV_HEADER: &str = "seq,time,type,account,account_seq,actor_kind,actor_id,actor_key_id,request_id,data,\
prev_hash,hash,account_prev_hash,account_hash";

/// One CSV row (without its line end) for `event`: the columns of [`CSV_HEADER`], `data` as
/// its JSON text, an absent actor id or key id as an empty cell. A cell holding a comma, a
/// quote or a line break is quoted, with its quotes doubled (RFC 4180).
pub fn to_csv_row(event: &AuditEvent) -> String {
    let data = serde_json::to_string(&event.data).expect("a JSON value serializes");
    let cells: [&str; 14] = [
        &event.seq.to_string(),
        &event.time,
        &event.kind,
        &event.account,
        &event.account_seq.to_string(),
        &event.actor.kind,
        event.actor.id.as_deref().unwrap_or(""),
        event.actor.key_id.as_deref().unwrap_or(""),
        &event.request_id,
        &data,
        &event.prev_hash,
        &event.hash,
        &event.account_prev_hash,
        &event.account_hash,
    ];
    let mut row = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            row.push(',');
        }
        push_cell(&mut row, cell);
    }
    row
}

fn push_cell(row: &mut String, cell: &str) {
    if cell.contains([',', '"', '\n', '\r']) {
        row.push('"');
        row.push_str(&cell.replace('"', "\"\""));
        row.push('"');
    } else {
        row.push_str(cell);
    }
}

#[cfg(test)]
mod tests {
    use keyledger_wire::Actor;

    use super::*;

    #[test]
    fn cells_are_quoted_when_needed() {
        let event = AuditEvent {
            seq: 7,
            time: "2025-06-15T15:06:40.000Z".into(),
            kind: "updated".into(),
            account: "default".into(),
            account_seq: 5,
            actor: Actor { kind: "system".into(), id: None, key_id: None },
            request_id: "a,b".into(),
            data: serde_json::json!({"name": "say \"hi\"\nthere"}),
            prev_hash: "00".into(),
            hash: "11".into(),
            account_prev_hash: "22".into(),
            account_hash: "33".into(),
        };
        assert_eq!(
            to_csv_row(&event),
            "7,2025-06-15T15:06:40.000Z,updated,default,5,system,,,\"a,b\",\"{\"\"name\"\":\"\"say \\\"\"hi\\\"\"\\nthere\"\"}\",00,11,22,33"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 14);
    }
}
