//! The audit log: an append-only hash chain. Each entry's hash covers its own fields and
//! the previous entry's hash, so editing, deleting or reordering any entry breaks the
//! chain from that point, and `segl audit verify` names the first broken entry.
//!
//! Appending locks the single `audit_head` row (an UPDATE takes a row lock on PostgreSQL;
//! SQLite has one writer), so concurrent appends from several nodes stay in one chain; the
//! primary key on `seq` refuses a fork even if that lock were bypassed.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{Arg, Db};
use crate::{Conn, Result, StoreError};

/// An event to record. Never put a secret or a national identity number in `data`.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    /// Dotted event name, e.g. `login.success`.
    pub event: &'a str,
    /// The person concerned (internal id), if any.
    pub subject: Option<&'a str>,
    /// The client concerned, if any.
    pub client_id: Option<&'a str>,
    /// Details (JSON object).
    pub data: serde_json::Value,
}

/// A stored entry.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When (unix seconds).
    pub ts: i64,
    /// Event name.
    pub event: String,
    /// Person concerned.
    pub subject: Option<String>,
    /// Client concerned.
    pub client_id: Option<String>,
    /// Details (JSON text).
    pub data: String,
    /// Previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

fn chain_hash(
    prev: &str,
    seq: i64,
    ts: i64,
    event: &str,
    subject: Option<&str>,
    client_id: Option<&str>,
    data: &str,
) -> String {
    // A JSON array is an unambiguous encoding of the fields (no separator games).
    let canonical = serde_json::json!([prev, seq, ts, event, subject, client_id, data]).to_string();
    data_encoding::HEXLOWER.encode(&Sha256::digest(canonical.as_bytes()))
}

const ADVANCE_HEAD: &str = "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash";
// The trigger `audit_log_advance_head` (SQLite's migration 0002) moves the head's hash along.
const INSERT_ENTRY: &str = "INSERT INTO audit_log (seq, ts, event, subject, client_id, data, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

// PostgreSQL: the same append as one statement (migration 0013), so one round trip and
// one update of the head row per entry. `audit_chain_hash` is `chain_hash` in SQL.
macro_rules! head_cte {
    () => {
        "head AS (UPDATE audit_head SET seq = seq + 1, prev_hash = hash, \
         hash = audit_chain_hash(hash, seq + 1, $1, $2, $3, $4, $5) \
         WHERE id = 1 RETURNING seq, prev_hash, hash)"
    };
}
macro_rules! insert_entry {
    () => {
        "INSERT INTO audit_log (seq, ts, event, subject, client_id, data, prev_hash, hash) \
         SELECT seq, $1, $2, $3, $4, $5, prev_hash, hash FROM head"
    };
}
const APPEND_PG: &str = concat!("WITH ", head_cte!(), " ", insert_entry!(), " RETURNING seq");
/// The same append as two CTEs of a larger statement (see `db::Deferred`), parameters $1–$5
/// as [`append_pg_args`].
pub(crate) const APPEND_PG_CTES: &str = concat!(head_cte!(), ", entry AS (", insert_entry!(), ")");

/// PostgreSQL: the append preceded by other data-modifying statements, each a CTE
/// `name AS (sql)` with its parameters renumbered to follow the append's $1–$5 and those of
/// the statements before it, so the rows an event records and the event itself are written
/// by one statement. Bind [`append_pg_args`] first, then each statement's parameters in order.
pub(crate) fn append_pg_after(statements: &[(&str, &str)]) -> String {
    let mut ctes = String::new();
    let mut bound = 5;
    for (name, sql) in statements {
        let (shifted, count) = shift_params(sql, bound);
        ctes.push_str(&format!("{name} AS ({shifted}), "));
        bound += count;
    }
    APPEND_PG.replacen("WITH ", &format!("WITH {ctes}"), 1)
}

/// `sql` with every parameter `$n` renumbered `$(n + by)`, and the highest `n` it has.
pub(crate) fn shift_params(sql: &str, by: usize) -> (String, usize) {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut highest = 0;
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        match rest[..digits].parse::<usize>() {
            Ok(n) => {
                highest = highest.max(n);
                out.push_str(&(n + by).to_string());
            }
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    (out, highest)
}

/// The parameters $1–$5 of the PostgreSQL append; `data` is `e.data` as text.
pub(crate) fn append_pg_args<'a>(e: &Event<'a>, data: &'a str, now: i64) -> [Arg<'a>; 5] {
    [
        now.into(),
        e.event.into(),
        e.subject.into(),
        e.client_id.into(),
        data.into(),
    ]
}

/// Runs a statement of [`append_pg_after`] and returns the entry's `seq`.
pub(crate) async fn run_append_pg(c: &mut impl Db, sql: &str, args: &[Arg<'_>]) -> Result<i64> {
    c.fetch_optional(sql, args, |r| r.int(0))
        .await?
        .ok_or_else(|| StoreError::Corrupt("the audit log has no head row".into()))
}

/// Appends an event in the caller's transaction.
///
/// In a batched body (see [`crate::Store::batched`]) the entry is written with the body's
/// other writes, and its `seq` is not known yet: 0 is returned.
pub async fn append(c: &mut impl Db, e: &Event<'_>, now: i64) -> Result<i64> {
    let data = e.data.to_string();
    if let Some(d) = c.deferred() {
        d.audit(&append_pg_args(e, &data, now))?;
        return Ok(0);
    }
    if c.is_postgres() {
        return run_append_pg(c, APPEND_PG, &append_pg_args(e, &data, now)).await;
    }
    let (seq, prev) = c
        .fetch_optional(ADVANCE_HEAD, &[], |r| Ok((r.int(0)?, r.text(1)?)))
        .await?
        .ok_or_else(|| StoreError::Corrupt("the audit log has no head row".into()))?;
    let hash = chain_hash(&prev, seq, now, e.event, e.subject, e.client_id, &data);
    c.execute(
        INSERT_ENTRY,
        &[
            seq.into(),
            now.into(),
            e.event.into(),
            e.subject.into(),
            e.client_id.into(),
            (&data).into(),
            (&prev).into(),
            (&hash).into(),
        ],
    )
    .await?;
    Ok(seq)
}

/// An [`Event`] that owns its fields, for work handed to another thread.
#[derive(Clone, Debug)]
pub struct OwnedEvent {
    /// Dotted event name.
    pub event: &'static str,
    /// The person concerned.
    pub subject: Option<String>,
    /// The client concerned.
    pub client_id: Option<String>,
    /// Details (JSON object).
    pub data: serde_json::Value,
}

impl OwnedEvent {
    /// Borrows it as an [`Event`].
    pub fn as_event(&self) -> Event<'_> {
        Event {
            event: self.event,
            subject: self.subject.as_deref(),
            client_id: self.client_id.as_deref(),
            data: self.data.clone(),
        }
    }
}

/// The result of checking the chain.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Whether the whole chain holds.
    pub ok: bool,
    /// Entries checked.
    pub entries: i64,
    /// The first entry whose hash or link is wrong, or the first missing sequence number.
    pub first_broken: Option<i64>,
    /// What is wrong with it.
    pub reason: Option<String>,
}

/// Checks every entry in order, in pages so memory stays flat on a long log.
pub async fn verify(c: &mut Conn) -> Result<Report> {
    let mut prev = "0".repeat(64);
    let mut expected_seq = 1i64;
    let mut entries = 0i64;
    loop {
        let rows = sqlx::query(
            "SELECT seq, ts, event, subject, client_id, data, prev_hash, hash FROM audit_log \
             WHERE seq >= $1 ORDER BY seq LIMIT 1000",
        )
        .bind(expected_seq)
        .fetch_all(&mut *c)
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let e = entry(r)?;
            let broken = |reason: &str| Report {
                ok: false,
                entries,
                first_broken: Some(expected_seq),
                reason: Some(reason.to_string()),
            };
            if e.seq != expected_seq {
                return Ok(broken("entry missing (sequence gap)"));
            }
            if e.prev_hash != prev {
                return Ok(broken("link to the previous entry does not match"));
            }
            let h = chain_hash(
                &e.prev_hash,
                e.seq,
                e.ts,
                &e.event,
                e.subject.as_deref(),
                e.client_id.as_deref(),
                &e.data,
            );
            if h != e.hash {
                return Ok(broken("entry content does not match its hash"));
            }
            prev = e.hash;
            expected_seq += 1;
            entries += 1;
        }
    }
    // Entries cut off the end show as a head that is ahead of the log.
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(c)
        .await?;
    let head_seq: i64 = head.try_get("seq")?;
    let head_hash: String = head.try_get("hash")?;
    if head_seq != entries || head_hash != prev {
        return Ok(Report {
            ok: false,
            entries,
            first_broken: Some(entries + 1),
            reason: Some("the log ends before its head (entries removed at the end)".into()),
        });
    }
    Ok(Report {
        ok: true,
        entries,
        first_broken: None,
        reason: None,
    })
}

fn entry(r: &sqlx::any::AnyRow) -> Result<Entry> {
    Ok(Entry {
        seq: r.try_get("seq")?,
        ts: r.try_get("ts")?,
        event: r.try_get("event")?,
        subject: r.try_get("subject")?,
        client_id: r.try_get("client_id")?,
        data: r.try_get("data")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// The latest `limit` entries, newest first.
pub async fn latest(c: &mut Conn, limit: i64) -> Result<Vec<Entry>> {
    let rows = sqlx::query(
        "SELECT seq, ts, event, subject, client_id, data, prev_hash, hash FROM audit_log ORDER BY seq DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(c)
    .await?;
    rows.iter().map(entry).collect()
}

/// A person's entries of the given events, newest first: at most `limit`, and only those
/// before the entry `before` (a `seq`) when given, so a page of history links to the next
/// with the last `seq` it shows (My page).
pub async fn for_subject(
    c: &mut impl crate::db::Db,
    subject: &str,
    events: &[&str],
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>> {
    use crate::db::Arg;
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut args: Vec<Arg<'_>> = vec![
        subject.into(),
        before.unwrap_or(i64::MAX).into(),
        limit.into(),
    ];
    let marks: Vec<String> = (0..events.len()).map(|i| format!("${}", i + 4)).collect();
    args.extend(events.iter().map(|e| Arg::Text(e)));
    let sql = format!(
        "SELECT seq, ts, event, subject, client_id, data, prev_hash, hash FROM audit_log \
         WHERE subject = $1 AND seq < $2 AND event IN ({}) ORDER BY seq DESC LIMIT $3",
        marks.join(", ")
    );
    c.fetch_all(&sql, &args, |r| {
        Ok(Entry {
            seq: r.int(0)?,
            ts: r.int(1)?,
            event: r.text(2)?,
            subject: r.opt_text(3)?,
            client_id: r.opt_text(4)?,
            data: r.text(5)?,
            prev_hash: r.text(6)?,
            hash: r.text(7)?,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_are_renumbered_in_one_pass() {
        assert_eq!(
            super::shift_params("VALUES ($1, $2, $10, '$', $6)", 11),
            ("VALUES ($12, $13, $21, '$', $17)".to_string(), 10)
        );
    }
}
