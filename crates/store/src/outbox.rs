//! The outbox: SMS, email and letters to people. A message is added in the transaction of
//! what it reports (an activation started, a code sent) and delivered after the commit by
//! a worker ([`due`], [`claim`], [`sent`], [`failed`]), so nothing is announced that did not
//! happen and nothing that happened goes unannounced. Bodies are sealed at rest: they may
//! hold a one-time code.
//!
//! Delivery state: `queued` until a transport accepts the message (`sent`, with the
//! transport's id when it gives one) or the worker gives up (`failed`); every attempt is
//! counted and the last error kept (short, without personal data). Support reads it with
//! [`list`] and sends a message again with [`resend`], which queues a copy.

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
    /// When a transport accepted it.
    pub sent_at: Option<i64>,
    /// When it is (or was to be) tried next, while queued.
    pub next_at: i64,
    /// Why the last attempt failed (short, no personal data).
    pub last_error: Option<String>,
    /// The transport's id of the accepted message (SMTP reply, SMS gateway id).
    pub provider_id: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<i64>,
    /// The message this one is a resend of.
    pub resent_from: Option<String>,
}

/// Adds a message, sealed, to be delivered once the caller's transaction commits.
pub async fn enqueue(
    c: &mut impl Db,
    seal: &SealKey,
    m: &NewMessage<'_>,
    now: i64,
) -> Result<String> {
    insert(c, seal, m, None, now).await
}

async fn insert(
    c: &mut impl Db,
    seal: &SealKey,
    m: &NewMessage<'_>,
    resent_from: Option<&str>,
    now: i64,
) -> Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    // The id is the associated data: a body cannot be moved to another row.
    let sealed = seal
        .try_seal(m.body.as_bytes(), id.as_bytes())
        .map_err(|_| StoreError::Seal)?;
    c.execute(
        "INSERT INTO outbox (id, person_id, channel, recipient, kind, body_sealed, created_at, state, attempts, next_at, resent_from) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $7, $8)",
        &[
            id.as_str().into(),
            m.person_id.into(),
            m.channel.into(),
            m.recipient.into(),
            m.kind.into(),
            crate::db::Arg::Blob(&sealed),
            now.into(),
            resent_from.into(),
        ],
    )
    .await?;
    Ok(id)
}

const COLS: &str = "id, person_id, channel, recipient, kind, body_sealed, state, attempts, created_at, sent_at, \
     next_at, last_error, provider_id, last_attempt_at, resent_from";

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
            next_at: r.int(10)?,
            last_error: r.opt_text(11)?,
            provider_id: r.opt_text(12)?,
            last_attempt_at: r.opt_int(13)?,
            resent_from: r.opt_text(14)?,
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

/// One message, or `None` for an unknown id.
pub async fn get(c: &mut impl Db, seal: &SealKey, id: &str) -> Result<Option<Message>> {
    let sql = format!("SELECT {COLS} FROM outbox WHERE id = $1");
    c.fetch_optional(&sql, &[id.into()], row)
        .await?
        .map(|r| open(seal, r))
        .transpose()
}

/// A person's messages, newest first (for support: was the code sent?).
pub async fn for_person(c: &mut impl Db, seal: &SealKey, person_id: &str) -> Result<Vec<Message>> {
    list(c, seal, Some(person_id), i64::MAX).await
}

/// The newest `limit` messages, of one person or of everyone, newest first.
pub async fn list(
    c: &mut impl Db,
    seal: &SealKey,
    person_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Message>> {
    let rows = match person_id {
        Some(p) => {
            let sql = format!(
                "SELECT {COLS} FROM outbox WHERE person_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
            );
            c.fetch_all(&sql, &[p.into(), limit.into()], row).await?
        }
        None => {
            let sql =
                format!("SELECT {COLS} FROM outbox ORDER BY created_at DESC, id DESC LIMIT $1");
            c.fetch_all(&sql, &[limit.into()], row).await?
        }
    };
    rows.into_iter().map(|r| open(seal, r)).collect()
}

/// Claims a due message for delivery by this node for `lease_secs`: false when another node
/// (or an earlier round) has it. A node that dies mid-delivery lets the lease run out, and
/// the message is tried again. Transports give up well within the lease, so two nodes never
/// send one message.
pub async fn claim(c: &mut impl Db, id: &str, now: i64, lease_secs: i64) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE outbox SET next_at = $3 WHERE id = $1 AND state = 'queued' AND next_at <= $2",
            &[id.into(), now.into(), (now + lease_secs).into()],
        )
        .await?;
    Ok(n == 1)
}

/// Records that a transport accepted the message, with the transport's id if it gave one.
pub async fn sent(c: &mut impl Db, id: &str, now: i64, provider_id: Option<&str>) -> Result<()> {
    c.execute(
        "UPDATE outbox SET state = 'sent', attempts = attempts + 1, sent_at = $2, last_attempt_at = $2, \
         last_error = NULL, provider_id = $3 WHERE id = $1 AND state = 'queued'",
        &[id.into(), now.into(), provider_id.into()],
    )
    .await?;
    Ok(())
}

/// Records a failed attempt at `now`: tried again at `retry_at`, or given up (`failed`)
/// when `None`. `error` is stored as support sees it: keep it short and free of personal
/// data.
pub async fn failed(
    c: &mut impl Db,
    id: &str,
    error: &str,
    now: i64,
    retry_at: Option<i64>,
) -> Result<()> {
    c.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, last_attempt_at = $4, \
         state = CASE WHEN $3 < 0 THEN 'failed' ELSE state END, \
         next_at = CASE WHEN $3 < 0 THEN next_at ELSE $3 END WHERE id = $1 AND state = 'queued'",
        &[
            id.into(),
            error.into(),
            retry_at.unwrap_or(-1).into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Queues a copy of message `id` (same person, channel, recipient, kind and body) under a
/// new id that names the original in `resent_from`; returns the new id. An unknown id is
/// [`StoreError::NotFound`].
pub async fn resend(c: &mut impl Db, seal: &SealKey, id: &str, now: i64) -> Result<String> {
    let m = get(c, seal, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("outbox message {id}")))?;
    insert(
        c,
        seal,
        &NewMessage {
            person_id: m.person_id.as_deref(),
            channel: &m.channel,
            recipient: &m.recipient,
            kind: &m.kind,
            body: &m.body,
        },
        Some(&m.id),
        now,
    )
    .await
}
