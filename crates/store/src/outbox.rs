//! The outbox: SMS, email and letters to people. A message is added in the transaction of
//! what it reports (an activation started, a code sent) and delivered after the commit by
//! a worker ([`due`], [`sent`], [`failed`]), so nothing is announced that did not happen
//! and nothing that happened goes unannounced. Bodies are sealed at rest: they may hold a
//! one-time code.

use serde::Serialize;

use crate::db::{Db, Get};
use crate::{Result, StoreError};
use segl_crypto::seal::SealKey;

/// A message to add.
#[derive(Clone, Debug)]
pub struct NewMessage<'a> {
    /// The person it is about, if any.
    pub person_id: Option<&'a str>,
    /// `sms`, `email` or `letter`.
    pub channel: &'a str,
    /// Phone number (E.164), email address or postal address.
    pub recipient: &'a str,
    /// What it is, for support and tests (`app.activation_started`, …); never secret.
    pub kind: &'a str,
    /// The text.
    pub body: &'a str,
}

/// A queued message, body opened.
#[derive(Clone, Debug, Serialize)]
pub struct Message {
    /// Id.
    pub id: String,
    /// The person it is about.
    pub person_id: Option<String>,
    /// `sms`, `email` or `letter`.
    pub channel: String,
    /// Where it goes.
    pub recipient: String,
    /// What it is.
    pub kind: String,
    /// The text.
    #[serde(skip)]
    pub body: String,
    /// `queued`, `sent` or `failed` (given up).
    pub state: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When it was added (unix seconds).
    pub created_at: i64,
    /// When it was delivered.
    pub sent_at: Option<i64>,
}

/// Adds a message, sealed, to be delivered once the caller's transaction commits.
pub async fn enqueue(
    c: &mut impl Db,
    seal: &SealKey,
    m: &NewMessage<'_>,
    now: i64,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let sealed = seal
        .try_seal(m.body.as_bytes(), id.as_bytes())
        .map_err(|_| StoreError::Seal)?;
    c.execute(
        "INSERT INTO outbox (id, person_id, channel, recipient, kind, body_sealed, created_at, state, attempts, next_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $7)",
        &[
            id.as_str().into(),
            m.person_id.into(),
            m.channel.into(),
            m.recipient.into(),
            m.kind.into(),
            crate::db::Arg::Blob(&sealed),
            now.into(),
        ],
    )
    .await?;
    Ok(id)
}

const COLS: &str =
    "id, person_id, channel, recipient, kind, body_sealed, state, attempts, created_at, sent_at";

fn row(r: &dyn Get) -> Result<(Message, Vec<u8>)> {
    Ok((
        Message {
            id: r.text(0)?,
            person_id: r.opt_text(1)?,
            channel: r.text(2)?,
            recipient: r.text(3)?,
            kind: r.text(4)?,
            body: String::new(),
            state: r.text(6)?,
            attempts: r.int(7)?,
            created_at: r.int(8)?,
            sent_at: r.opt_int(9)?,
        },
        r.blob(5)?,
    ))
}

fn open(seal: &SealKey, (mut m, sealed): (Message, Vec<u8>)) -> Result<Message> {
    let body = seal
        .open(&sealed, m.id.as_bytes())
        .map_err(|_| StoreError::Seal)?;
    m.body = String::from_utf8(body.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("outbox message {} is not UTF-8", m.id)))?;
    Ok(m)
}

/// Messages due for delivery, oldest first.
pub async fn due(c: &mut impl Db, seal: &SealKey, now: i64, limit: i64) -> Result<Vec<Message>> {
    let sql = format!(
        "SELECT {COLS} FROM outbox WHERE state = 'queued' AND next_at <= $1 ORDER BY created_at, id LIMIT $2"
    );
    c.fetch_all(&sql, &[now.into(), limit.into()], row)
        .await?
        .into_iter()
        .map(|r| open(seal, r))
        .collect()
}

/// A person's messages, newest first (for support: was the code sent?).
pub async fn for_person(c: &mut impl Db, seal: &SealKey, person_id: &str) -> Result<Vec<Message>> {
    let sql =
        format!("SELECT {COLS} FROM outbox WHERE person_id = $1 ORDER BY created_at DESC, id DESC");
    c.fetch_all(&sql, &[person_id.into()], row)
        .await?
        .into_iter()
        .map(|r| open(seal, r))
        .collect()
}

/// Claims a due message for delivery by this node for `lease_secs`: false when another node
/// (or an earlier round) has it. A node that dies mid-delivery lets the lease run out, and
/// the message is tried again.
pub async fn claim(c: &mut impl Db, id: &str, now: i64, lease_secs: i64) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE outbox SET next_at = $3 WHERE id = $1 AND state = 'queued' AND next_at <= $2",
            &[id.into(), now.into(), (now + lease_secs).into()],
        )
        .await?;
    Ok(n == 1)
}

/// Records a delivery.
pub async fn sent(c: &mut impl Db, id: &str, now: i64) -> Result<()> {
    c.execute(
        "UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_at = $2, last_error = NULL WHERE id = $1",
        &[id.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Records a failed attempt: tried again at `retry_at`, or given up when `None`.
pub async fn failed(c: &mut impl Db, id: &str, error: &str, retry_at: Option<i64>) -> Result<()> {
    c.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, \
         state = CASE WHEN $3 < 0 THEN 'failed' ELSE state END, \
         next_at = CASE WHEN $3 < 0 THEN next_at ELSE $3 END WHERE id = $1",
        &[id.into(), error.into(), retry_at.unwrap_or(-1).into()],
    )
    .await?;
    Ok(())
}
