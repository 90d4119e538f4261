//! Changes of phone or email waiting for confirmation (My page). A change is recorded with
//! the hash of a one-time code sent to the new address; it applies when the right code
//! comes back in time ([`use_change`]), and wrong codes are counted ([`failed`]) until the
//! change is cancelled. The new address is personal data like the person's own columns:
//! it leaves the store only for the page of the person it belongs to.

use crate::db::{Db, Get};
use crate::{Result, StoreError};

/// Which contact detail a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The mobile number (SMS).
    Phone,
    /// The email address.
    Email,
}

impl Which {
    /// The stored name (also the form value and the audit field).
    pub fn as_str(self) -> &'static str {
        match self {
            Which::Phone => "phone",
            Which::Email => "email",
        }
    }

    /// Parses a stored or posted name.
    pub fn parse(s: &str) -> Option<Which> {
        match s {
            "phone" => Some(Which::Phone),
            "email" => Some(Which::Email),
            _ => None,
        }
    }
}

/// A change as stored.
#[derive(Clone, Debug)]
pub struct ContactChange {
    /// Id (random).
    pub id: String,
    /// Whose contact detail.
    pub person_id: String,
    /// Phone or email.
    pub which: Which,
    /// The new, checked value (E.164 number or email address).
    pub new_value: String,
    /// Hash of the code sent to the new address.
    pub code_hash: String,
    /// Wrong codes so far.
    pub failures: i64,
    /// When asked for (unix seconds).
    pub created_at: i64,
    /// The code works until then.
    pub expires_at: i64,
    /// When the right code applied it.
    pub used_at: Option<i64>,
    /// When it was given up: too many wrong codes, or a newer change of the same kind.
    pub cancelled_at: Option<i64>,
}

const COLS: &str = "id, person_id, which, new_value, code_hash, failures, created_at, expires_at, used_at, cancelled_at";

fn row(r: &dyn Get) -> Result<ContactChange> {
    let which = r.text(2)?;
    Ok(ContactChange {
        id: r.text(0)?,
        person_id: r.text(1)?,
        which: Which::parse(&which).ok_or_else(|| {
            StoreError::Corrupt(format!("contact change of unknown kind {which:?}"))
        })?,
        new_value: r.text(3)?,
        code_hash: r.text(4)?,
        failures: r.int(5)?,
        created_at: r.int(6)?,
        expires_at: r.int(7)?,
        used_at: r.opt_int(8)?,
        cancelled_at: r.opt_int(9)?,
    })
}

/// Records a new change as the person's latest of its kind and cancels their earlier open
/// one, so only the latest code works. Run it in the transaction that queues the code's
/// message. Of two started at once, one is [`StoreError::Conflict`].
pub async fn start(c: &mut impl Db, ch: &ContactChange) -> Result<()> {
    c.execute(
        "UPDATE contact_changes SET cancelled_at = $3 \
         WHERE person_id = $1 AND which = $2 AND used_at IS NULL AND cancelled_at IS NULL",
        &[
            (&ch.person_id).into(),
            ch.which.as_str().into(),
            ch.created_at.into(),
        ],
    )
    .await?;
    c.execute(
        "INSERT INTO contact_changes (id, person_id, which, seq, new_value, code_hash, failures, \
         created_at, expires_at, used_at, cancelled_at) \
         SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, 0, $6, $7, NULL, NULL \
         FROM contact_changes WHERE person_id = $2 AND which = $3",
        &[
            (&ch.id).into(),
            (&ch.person_id).into(),
            ch.which.as_str().into(),
            (&ch.new_value).into(),
            (&ch.code_hash).into(),
            ch.created_at.into(),
            ch.expires_at.into(),
        ],
    )
    .await
    .map_err(|e| {
        if e.is_unique_violation() {
            StoreError::Conflict
        } else {
            e
        }
    })?;
    Ok(())
}

/// The person's latest change of this kind, whatever its state: the one a code answers.
pub async fn latest(
    c: &mut impl Db,
    person_id: &str,
    which: Which,
) -> Result<Option<ContactChange>> {
    let sql = format!(
        "SELECT {COLS} FROM contact_changes WHERE person_id = $1 AND which = $2 \
         ORDER BY seq DESC LIMIT 1"
    );
    c.fetch_optional(&sql, &[person_id.into(), which.as_str().into()], row)
        .await
}

/// The person's changes still waiting for a code at `now` (at most one of each kind).
pub async fn open(c: &mut impl Db, person_id: &str, now: i64) -> Result<Vec<ContactChange>> {
    let sql = format!(
        "SELECT {COLS} FROM contact_changes WHERE person_id = $1 AND used_at IS NULL \
         AND cancelled_at IS NULL AND expires_at > $2 ORDER BY created_at, id"
    );
    c.fetch_all(&sql, &[person_id.into(), now.into()], row)
        .await
}

/// How many changes the person asked for since `since` (each one sends a message).
pub async fn started_since(c: &mut impl Db, person_id: &str, since: i64) -> Result<i64> {
    Ok(c.fetch_optional(
        "SELECT COUNT(*) FROM contact_changes WHERE person_id = $1 AND created_at >= $2",
        &[person_id.into(), since.into()],
        |r| r.int(0),
    )
    .await?
    .unwrap_or(0))
}

/// Counts a wrong code on an open change, cancelling it at `max` wrong codes; returns the
/// wrong codes so far, or `None` when the change was no longer open.
pub async fn failed(c: &mut impl Db, id: &str, max: i64, now: i64) -> Result<Option<i64>> {
    c.fetch_optional(
        "UPDATE contact_changes SET failures = failures + 1, \
         cancelled_at = CASE WHEN failures + 1 >= $2 THEN $3 ELSE cancelled_at END \
         WHERE id = $1 AND used_at IS NULL AND cancelled_at IS NULL RETURNING failures",
        &[id.into(), max.into(), now.into()],
        |r| r.int(0),
    )
    .await
}

/// Marks an open, unexpired change used; false when it was used, cancelled or expired
/// meanwhile (the guarded UPDATE decides a race between two right codes).
pub async fn use_change(c: &mut impl Db, id: &str, now: i64) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE contact_changes SET used_at = $2 WHERE id = $1 AND used_at IS NULL \
             AND cancelled_at IS NULL AND expires_at > $2",
            &[id.into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}
