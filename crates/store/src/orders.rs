//! Orders of an eID and the persons' control questions. A state change is conditional on
//! the state it leaves (`… WHERE state = $from`), so two support agents, a guardian and the
//! person cannot move one order twice.

use serde::Serialize;

use crate::db::{Db, Get};
use crate::{Result, StoreError, duplicate_if_unique};

/// An order as stored. Personal data: the number and contact details go to support and
/// the person, never to logs.
#[derive(Clone, Debug, Serialize)]
pub struct Order {
    /// Internal id.
    pub id: String,
    /// The order number (12 digits).
    pub number: String,
    /// National identity number.
    #[serde(skip)]
    pub nin: String,
    /// Full name.
    pub name: String,
    /// E.164 mobile number.
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Postal address lines.
    pub address: Vec<String>,
    /// `app` or `card`.
    pub kind: String,
    /// `letter` or `sms_email`.
    pub delivery: String,
    /// The guardian's number, for a minor.
    #[serde(skip)]
    pub guardian_nin: Option<String>,
    /// `segl_core::order::OrderState` name.
    pub state: String,
    /// Why it was rejected or refused.
    pub reason: Option<String>,
    /// `mrz` or `manual`.
    pub evidence: String,
    /// What the document check saw, without the document number in full.
    pub evidence_summary: Option<String>,
    /// Whether the identity verifier checked the identity (a guardian's approval then
    /// approves the order; otherwise support reviews it).
    pub identity_verified: bool,
    /// Who decided (support agent, `guardian`, `mrz`).
    pub decided_by: Option<String>,
    /// The guardian who approved or refused.
    pub guardian_person_id: Option<String>,
    /// When the guardian decided.
    pub guardian_decided_at: Option<i64>,
    /// The person, once approved.
    pub person_id: Option<String>,
    /// When the activation codes stop working.
    pub code_expires_at: Option<i64>,
    /// Wrong activation codes so far.
    pub code_failures: i64,
    /// The code device reserved for a `card` order.
    pub device_serial: Option<String>,
    /// When ordered.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// When activated.
    pub activated_at: Option<i64>,
}

/// The hashes of an order's activation codes.
#[derive(Clone, Debug)]
pub struct CodeHashes {
    /// The first (letter or SMS) code's.
    pub code: String,
    /// The second (email) code's, for SMS + email delivery.
    pub second: Option<String>,
}

const COLS: &str = "id, number, nin, name, phone, email, address, kind, delivery, guardian_nin, \
     state, reason, evidence, evidence_summary, decided_by, guardian_person_id, \
     guardian_decided_at, person_id, code_expires_at, code_failures, device_serial, created_at, \
     updated_at, activated_at, identity_verified";

fn row(r: &dyn Get) -> Result<Order> {
    Ok(Order {
        id: r.text(0)?,
        number: r.text(1)?,
        nin: r.text(2)?,
        name: r.text(3)?,
        phone: r.opt_text(4)?,
        email: r.opt_text(5)?,
        address: r
            .opt_text(6)?
            .map(|a| a.lines().map(str::to_string).collect())
            .unwrap_or_default(),
        kind: r.text(7)?,
        delivery: r.text(8)?,
        guardian_nin: r.opt_text(9)?,
        state: r.text(10)?,
        reason: r.opt_text(11)?,
        evidence: r.text(12)?,
        evidence_summary: r.opt_text(13)?,
        decided_by: r.opt_text(14)?,
        guardian_person_id: r.opt_text(15)?,
        guardian_decided_at: r.opt_int(16)?,
        person_id: r.opt_text(17)?,
        code_expires_at: r.opt_int(18)?,
        code_failures: r.int(19)?,
        device_serial: r.opt_text(20)?,
        created_at: r.int(21)?,
        updated_at: r.int(22)?,
        activated_at: r.opt_int(23)?,
        identity_verified: r.int(24)? != 0,
    })
}

/// Adds an order (its `state` as given); a number already taken is
/// [`StoreError::Duplicate`].
pub async fn insert(c: &mut impl Db, o: &Order) -> Result<()> {
    let address = (!o.address.is_empty()).then(|| o.address.join("\n"));
    let n = c
        .execute(
            "INSERT INTO orders (id, number, nin, name, phone, email, address, kind, delivery, \
             guardian_nin, state, reason, evidence, evidence_summary, decided_by, created_at, updated_at, \
             identity_verified) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17 \
             WHERE NOT EXISTS (SELECT 1 FROM orders WHERE number = $2)",
            &[
                o.id.as_str().into(),
                o.number.as_str().into(),
                o.nin.as_str().into(),
                o.name.as_str().into(),
                o.phone.as_deref().into(),
                o.email.as_deref().into(),
                address.as_deref().into(),
                o.kind.as_str().into(),
                o.delivery.as_str().into(),
                o.guardian_nin.as_deref().into(),
                o.state.as_str().into(),
                o.reason.as_deref().into(),
                o.evidence.as_str().into(),
                o.evidence_summary.as_deref().into(),
                o.decided_by.as_deref().into(),
                o.created_at.into(),
                i64::from(o.identity_verified).into(),
            ],
        )
        .await
        .map_err(|e| duplicate_if_unique(e, "an order with this number"))?;
    if n == 0 {
        return Err(StoreError::Duplicate("an order with this number".into()));
    }
    Ok(())
}

/// Finds an order by its number.
pub async fn by_number(c: &mut impl Db, number: &str) -> Result<Option<Order>> {
    let sql = format!("SELECT {COLS} FROM orders WHERE number = $1");
    c.fetch_optional(&sql, &[number.into()], row).await
}

/// A person's open order (awaiting a guardian or review, or approved with codes that
/// still work at `now`), if any.
pub async fn open_for_nin(c: &mut impl Db, nin: &str, now: i64) -> Result<Option<Order>> {
    let sql = format!(
        "SELECT {COLS} FROM orders WHERE nin = $1 \
         AND (state IN ('awaiting_guardian', 'pending_review') \
              OR (state = 'approved' AND code_expires_at > $2)) \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    c.fetch_optional(&sql, &[nin.into(), now.into()], row).await
}

/// Orders for a national identity number, newest first.
pub async fn for_nin(c: &mut impl Db, nin: &str) -> Result<Vec<Order>> {
    let sql = format!("SELECT {COLS} FROM orders WHERE nin = $1 ORDER BY created_at DESC, id DESC");
    c.fetch_all(&sql, &[nin.into()], row).await
}

/// Orders in a state (all states with `None`), oldest first: the review queue.
pub async fn list(c: &mut impl Db, state: Option<&str>, limit: i64) -> Result<Vec<Order>> {
    match state {
        Some(s) => {
            let sql = format!(
                "SELECT {COLS} FROM orders WHERE state = $1 ORDER BY created_at, id LIMIT $2"
            );
            c.fetch_all(&sql, &[s.into(), limit.into()], row).await
        }
        None => {
            let sql = format!("SELECT {COLS} FROM orders ORDER BY created_at, id LIMIT $1");
            c.fetch_all(&sql, &[limit.into()], row).await
        }
    }
}

/// Orders waiting for this guardian's decision, oldest first.
pub async fn awaiting_guardian(c: &mut impl Db, guardian_nin: &str) -> Result<Vec<Order>> {
    let sql = format!(
        "SELECT {COLS} FROM orders WHERE guardian_nin = $1 AND state = 'awaiting_guardian' \
         ORDER BY created_at, id"
    );
    c.fetch_all(&sql, &[guardian_nin.into()], row).await
}

/// A state change, applied only if the order is still in `from`.
#[derive(Clone, Debug)]
pub struct Transition<'a> {
    /// The state it must be in.
    pub from: &'a str,
    /// The new state.
    pub to: &'a str,
    /// Why (a rejection or refusal).
    pub reason: Option<&'a str>,
    /// Who decided.
    pub decided_by: Option<&'a str>,
}

/// Moves an order; false when it was no longer in `t.from`.
pub async fn transition(c: &mut impl Db, id: &str, t: &Transition<'_>, now: i64) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE orders SET state = $3, reason = COALESCE($4, reason), \
             decided_by = COALESCE($5, decided_by), updated_at = $6 \
             WHERE id = $1 AND state = $2",
            &[
                id.into(),
                t.from.into(),
                t.to.into(),
                t.reason.into(),
                t.decided_by.into(),
                now.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Records the guardian's decision (the state moves with [`transition`]).
pub async fn guardian_decided(
    c: &mut impl Db,
    id: &str,
    guardian_person_id: &str,
    now: i64,
) -> Result<()> {
    c.execute(
        "UPDATE orders SET guardian_person_id = $2, guardian_decided_at = $3 WHERE id = $1",
        &[id.into(), guardian_person_id.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Stores the approved order's person, activation codes' hashes and their expiry, and the
/// reserved code device; clears the wrong-code count (a resend after a lock).
pub async fn set_codes(
    c: &mut impl Db,
    id: &str,
    person_id: &str,
    codes: &CodeHashes,
    expires_at: i64,
    device_serial: Option<&str>,
    now: i64,
) -> Result<()> {
    c.execute(
        "UPDATE orders SET person_id = $2, code_hash = $3, second_code_hash = $4, \
         code_expires_at = $5, code_failures = 0, device_serial = COALESCE($6, device_serial), \
         updated_at = $7 WHERE id = $1",
        &[
            id.into(),
            person_id.into(),
            codes.code.as_str().into(),
            codes.second.as_deref().into(),
            expires_at.into(),
            device_serial.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// The hashes of an order's activation codes, if it has any.
pub async fn codes(c: &mut impl Db, id: &str) -> Result<Option<CodeHashes>> {
    c.fetch_optional(
        "SELECT code_hash, second_code_hash FROM orders WHERE id = $1 AND code_hash IS NOT NULL",
        &[id.into()],
        |r| {
            Ok(CodeHashes {
                code: r.text(0)?,
                second: r.opt_text(1)?,
            })
        },
    )
    .await
}

/// Counts a wrong activation code; returns the count.
pub async fn code_failed(c: &mut impl Db, id: &str) -> Result<i64> {
    c.fetch_optional(
        "UPDATE orders SET code_failures = code_failures + 1 WHERE id = $1 RETURNING code_failures",
        &[id.into()],
        |r| r.int(0),
    )
    .await?
    .ok_or_else(|| StoreError::NotFound("order".into()))
}

/// Marks an approved order activated and forgets its codes; false if it was no longer
/// approved (a second activation with the same codes).
pub async fn activated(c: &mut impl Db, id: &str, now: i64) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE orders SET state = 'activated', activated_at = $2, updated_at = $2, \
             code_hash = NULL, second_code_hash = NULL WHERE id = $1 AND state = 'approved'",
            &[id.into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}

/// When the person last activated an eID order, if ever.
pub async fn last_activation(c: &mut impl Db, person_id: &str) -> Result<Option<i64>> {
    Ok(c.fetch_optional(
        "SELECT MAX(activated_at) FROM orders WHERE person_id = $1 AND state = 'activated'",
        &[person_id.into()],
        |r| r.opt_int(0),
    )
    .await?
    .flatten())
}

/// Ends approved orders whose codes ran out; returns how many.
pub async fn expire(c: &mut impl Db, now: i64) -> Result<u64> {
    c.execute(
        "UPDATE orders SET state = 'expired', updated_at = $1, code_hash = NULL, \
         second_code_hash = NULL WHERE state = 'approved' AND code_expires_at <= $1",
        &[now.into()],
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Control questions

/// A control question with its hashed answer.
#[derive(Clone, Debug)]
pub struct ControlQuestion {
    /// Position (0-based).
    pub idx: i64,
    /// The question as the person chose or wrote it.
    pub question: String,
    /// PHC string of the normalised answer's hash.
    pub answer_phc: String,
}

/// Replaces the person's control questions.
pub async fn set_questions(
    c: &mut impl Db,
    person_id: &str,
    questions: &[ControlQuestion],
    now: i64,
) -> Result<()> {
    c.execute(
        "DELETE FROM control_questions WHERE person_id = $1",
        &[person_id.into()],
    )
    .await?;
    for q in questions {
        c.execute(
            "INSERT INTO control_questions (person_id, idx, question, answer_phc, set_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                person_id.into(),
                q.idx.into(),
                q.question.as_str().into(),
                q.answer_phc.as_str().into(),
                now.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The person's control questions, in order.
pub async fn questions(c: &mut impl Db, person_id: &str) -> Result<Vec<ControlQuestion>> {
    c.fetch_all(
        "SELECT idx, question, answer_phc FROM control_questions WHERE person_id = $1 ORDER BY idx",
        &[person_id.into()],
        |r| {
            Ok(ControlQuestion {
                idx: r.int(0)?,
                question: r.text(1)?,
                answer_phc: r.text(2)?,
            })
        },
    )
    .await
}
