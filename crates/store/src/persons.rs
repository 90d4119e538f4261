//! Persons and their passwords.

use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Get};
use crate::{Conn, Result, StoreError, duplicate_if_unique};

/// A person as stored. The national identity number is personal data: it leaves the
/// store only where a caller needs it (the `nin` claim, support look-ups).
#[derive(Clone, Debug, Serialize)]
pub struct Person {
    /// Internal id.
    pub id: String,
    /// Stable pseudonymous subject identifier for tokens.
    pub sub: String,
    /// National identity number (11 digits).
    #[serde(skip)]
    pub nin: String,
    /// Full name.
    pub name: String,
    /// Birth date, ISO 8601.
    pub birthdate: String,
    /// Mobile number, if known.
    pub phone: Option<String>,
    /// Email, if known.
    pub email: Option<String>,
    /// When added (unix seconds).
    pub created_at: i64,
}

impl Person {
    /// Given name: all but the last word of the name.
    pub fn given_name(&self) -> &str {
        self.name
            .rsplit_once(' ')
            .map(|(g, _)| g)
            .unwrap_or(&self.name)
    }

    /// Family name: the last word of the name.
    pub fn family_name(&self) -> &str {
        self.name
            .rsplit_once(' ')
            .map(|(_, f)| f)
            .unwrap_or(&self.name)
    }
}

// The columns `person` reads, in its order.
macro_rules! person_select {
    ($where:literal) => {
        concat!(
            "SELECT id, sub, nin, name, birthdate, phone, email, created_at FROM persons WHERE ",
            $where
        )
    };
}

fn person(r: &dyn Get) -> Result<Person> {
    person_at(r, 0)
}

/// A person from the columns of `person_select!` starting at column `at` (of a join).
pub(crate) fn person_at(r: &dyn Get, at: usize) -> Result<Person> {
    Ok(Person {
        id: r.text(at)?,
        sub: r.text(at + 1)?,
        nin: r.text(at + 2)?,
        name: r.text(at + 3)?,
        birthdate: r.text(at + 4)?,
        phone: r.opt_text(at + 5)?,
        email: r.opt_text(at + 6)?,
        created_at: r.int(at + 7)?,
    })
}

/// Adds a person; a number already present is [`StoreError::Duplicate`].
pub async fn insert(c: &mut impl Db, p: &Person) -> Result<()> {
    let n = c
        .execute(
            "INSERT INTO persons (id, sub, nin, name, birthdate, phone, email, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM persons WHERE nin = $3)",
            &[
                p.id.as_str().into(),
                p.sub.as_str().into(),
                p.nin.as_str().into(),
                p.name.as_str().into(),
                p.birthdate.as_str().into(),
                (&p.phone).into(),
                (&p.email).into(),
                p.created_at.into(),
            ],
        )
        .await
        .map_err(|e| duplicate_if_unique(e, "a person with this national identity number"))?;
    if n == 0 {
        return Err(StoreError::Duplicate(
            "a person with this national identity number".into(),
        ));
    }
    Ok(())
}

/// Finds a person by national identity number.
pub async fn by_nin(c: &mut impl Db, nin: &str) -> Result<Option<Person>> {
    c.fetch_optional(person_select!("nin = $1"), &[nin.into()], person)
        .await
}

/// Finds a person by internal id.
pub async fn by_id(c: &mut impl Db, id: &str) -> Result<Option<Person>> {
    c.fetch_optional(person_select!("id = $1"), &[id.into()], person)
        .await
}

/// A person's password record.
#[derive(Clone, Debug)]
pub struct PasswordRecord {
    /// PHC string of the hash.
    pub phc: String,
    /// Wrong attempts in a row.
    pub failures: i64,
    /// Locked after too many failures.
    pub locked: bool,
    /// When it was last set.
    pub changed_at: i64,
}

/// Sets (or replaces) a password and clears failures and lock.
pub async fn set_password(c: &mut impl Db, person_id: &str, phc: &str, now: i64) -> Result<()> {
    c.execute(
        "INSERT INTO passwords (person_id, phc, failures, locked, changed_at) VALUES ($1, $2, 0, 0, $3) \
         ON CONFLICT (person_id) DO UPDATE SET phc = $2, failures = 0, locked = 0, changed_at = $3",
        &[person_id.into(), phc.into(), now.into()],
    )
    .await?;
    Ok(())
}

/// Replaces the hash only (rehash on login with new parameters).
pub async fn rehash_password(
    c: &mut impl Db,
    person_id: &str,
    old_phc: &str,
    phc: &str,
) -> Result<()> {
    // Only over the hash that was verified: a password changed meanwhile stays changed.
    c.execute(
        "UPDATE passwords SET phc = $2 WHERE person_id = $1 AND phc = $3",
        &[person_id.into(), phc.into(), old_phc.into()],
    )
    .await?;
    Ok(())
}

/// Reads a person's password record.
pub async fn password(c: &mut impl Db, person_id: &str) -> Result<Option<PasswordRecord>> {
    c.fetch_optional(
        "SELECT phc, failures, locked, changed_at FROM passwords WHERE person_id = $1",
        &[person_id.into()],
        |r| {
            Ok(PasswordRecord {
                phc: r.text(0)?,
                failures: r.int(1)?,
                locked: r.int(2)? != 0,
                changed_at: r.int(3)?,
            })
        },
    )
    .await
}

/// The person with this national identity number and their password record, in one read
/// (the password step's look-up before hashing). `None` for an unknown number.
pub async fn password_by_nin(
    c: &mut impl Db,
    nin: &str,
) -> Result<Option<(String, Option<PasswordRecord>)>> {
    c.fetch_optional(
        "SELECT p.id, w.phc, w.failures, w.locked, w.changed_at FROM persons p \
         LEFT JOIN passwords w ON w.person_id = p.id WHERE p.nin = $1",
        &[nin.into()],
        |r| {
            let record = match r.opt_text(1)? {
                Some(phc) => Some(PasswordRecord {
                    phc,
                    failures: r.int(2)?,
                    locked: r.int(3)? != 0,
                    changed_at: r.int(4)?,
                }),
                None => None,
            };
            Ok((r.text(0)?, record))
        },
    )
    .await
}

/// Counts a wrong password atomically and locks at `max`; returns (failures, locked).
pub async fn password_failed(c: &mut impl Db, person_id: &str, max: u32) -> Result<(i64, bool)> {
    c.fetch_optional(
        "UPDATE passwords SET failures = failures + 1, \
         locked = CASE WHEN failures + 1 >= $2 THEN 1 ELSE locked END \
         WHERE person_id = $1 RETURNING failures, locked",
        &[person_id.into(), i64::from(max).into()],
        |r| Ok((r.int(0)?, r.int(1)? != 0)),
    )
    .await?
    .ok_or_else(|| StoreError::NotFound("password".into()))
}

const CLEAR_FAILURES: &str =
    "UPDATE passwords SET failures = 0 WHERE person_id = $1 AND failures <> 0";

/// Clears the failure counter after a right password.
async fn password_succeeded(c: &mut impl Db, person_id: &str) -> Result<()> {
    c.execute(CLEAR_FAILURES, &[person_id.into()]).await?;
    Ok(())
}

/// After a right password was hashed outside the transaction: whether the password may
/// still be accepted, read again inside it (wrong guesses counted meanwhile may have
/// locked it; a missing record is not accepted), and if so its failures cleared. On
/// PostgreSQL one statement; the SELECT sees the row as the transaction's snapshot has it,
/// as the separate read does.
pub async fn password_accepted(c: &mut impl Db, person_id: &str) -> Result<bool> {
    if c.deferred().is_some() {
        // Batched: the run of failures ends only if the password is still unlocked when the
        // batch is written; if it was locked meanwhile, nothing is written (Conflict) and
        // the step runs again in a transaction, which answers locked.
        crate::db::execute_one(
            c,
            "UPDATE passwords SET failures = 0 WHERE person_id = $1 AND locked = 0",
            &[person_id.into()],
        )
        .await?;
        return Ok(true);
    }
    if c.is_postgres() {
        let locked = c
            .fetch_optional(
                "WITH cleared AS (UPDATE passwords SET failures = 0 \
                 WHERE person_id = $1 AND failures <> 0 AND locked = 0) \
                 SELECT locked FROM passwords WHERE person_id = $1",
                &[person_id.into()],
                |r| r.int(0),
            )
            .await?;
        return Ok(locked == Some(0));
    }
    if password(c, person_id).await?.is_none_or(|r| r.locked) {
        return Ok(false);
    }
    password_succeeded(c, person_id).await?;
    Ok(true)
}

/// Unlocks a locked password (support).
pub async fn unlock_password(c: &mut Conn, person_id: &str) -> Result<bool> {
    let n = sqlx::query("UPDATE passwords SET failures = 0, locked = 0 WHERE person_id = $1")
        .bind(person_id)
        .execute(c)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// Number of persons (for metrics and the demo seed check).
pub async fn count(c: &mut Conn) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM persons")
        .fetch_one(c)
        .await?;
    Ok(row.try_get("n")?)
}

/// Blocks the person's eID; false when it was blocked already (the first block stands).
pub async fn block(c: &mut impl Db, person_id: &str, reason: &str, now: i64) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE persons SET blocked_at = $2, blocked_reason = $3 WHERE id = $1 AND blocked_at IS NULL",
            &[person_id.into(), now.into(), reason.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Lifts a block (after a new identity check and activation); false when not blocked.
pub async fn unblock(c: &mut impl Db, person_id: &str) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE persons SET blocked_at = NULL, blocked_reason = NULL WHERE id = $1 AND blocked_at IS NOT NULL",
            &[person_id.into()],
        )
        .await?;
    Ok(n == 1)
}

/// When and why the person's eID was blocked, if it is.
pub async fn blocked(c: &mut impl Db, person_id: &str) -> Result<Option<(i64, String)>> {
    c.fetch_optional(
        "SELECT blocked_at, blocked_reason FROM persons WHERE id = $1 AND blocked_at IS NOT NULL",
        &[person_id.into()],
        |r| Ok((r.int(0)?, r.opt_text(1)?.unwrap_or_default())),
    )
    .await
}

/// Replaces the person's mobile number (checked by the caller); false for an unknown person.
pub async fn set_phone(c: &mut impl Db, person_id: &str, phone: Option<&str>) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE persons SET phone = $2 WHERE id = $1",
            &[person_id.into(), phone.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Replaces the person's email address (checked by the caller); false for an unknown person.
pub async fn set_email(c: &mut impl Db, person_id: &str, email: Option<&str>) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE persons SET email = $2 WHERE id = $1",
            &[person_id.into(), email.into()],
        )
        .await?;
    Ok(n == 1)
}
