//! Persons and their passwords.

use serde::Serialize;
use sqlx::Row;

use crate::{Conn, Result, StoreError, map_unique};

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

const COLS: &str = "id, sub, nin, name, birthdate, phone, email, created_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Person> {
    Ok(Person {
        id: r.try_get("id")?,
        sub: r.try_get("sub")?,
        nin: r.try_get("nin")?,
        name: r.try_get("name")?,
        birthdate: r.try_get("birthdate")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Adds a person; a number already present is [`StoreError::Duplicate`].
pub async fn insert(c: &mut Conn, p: &Person) -> Result<()> {
    sqlx::query(
        "INSERT INTO persons (id, sub, nin, name, birthdate, phone, email, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&p.id)
    .bind(&p.sub)
    .bind(&p.nin)
    .bind(&p.name)
    .bind(&p.birthdate)
    .bind(&p.phone)
    .bind(&p.email)
    .bind(p.created_at)
    .execute(c)
    .await
    .map_err(|e| map_unique(e, "a person with this national identity number"))?;
    Ok(())
}

/// Finds a person by national identity number.
pub async fn by_nin(c: &mut Conn, nin: &str) -> Result<Option<Person>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM persons WHERE nin = $1"));
    let row = sqlx::query(sql).bind(nin).fetch_optional(c).await?;
    row.as_ref().map(from_row).transpose()
}

/// Finds a person by internal id.
pub async fn by_id(c: &mut Conn, id: &str) -> Result<Option<Person>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM persons WHERE id = $1"));
    let row = sqlx::query(sql).bind(id).fetch_optional(c).await?;
    row.as_ref().map(from_row).transpose()
}

/// [`by_id`] on the SQLite writer thread.
pub(crate) fn by_id_sync(c: &rusqlite::Connection, id: &str) -> Result<Option<Person>> {
    use rusqlite::OptionalExtension;
    let sql = format!("SELECT {COLS} FROM persons WHERE id = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([id], |r| {
            Ok(Person {
                id: r.get(0)?,
                sub: r.get(1)?,
                nin: r.get(2)?,
                name: r.get(3)?,
                birthdate: r.get(4)?,
                phone: r.get(5)?,
                email: r.get(6)?,
                created_at: r.get(7)?,
            })
        })
        .optional()?)
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
pub async fn set_password(c: &mut Conn, person_id: &str, phc: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO passwords (person_id, phc, failures, locked, changed_at) VALUES ($1, $2, 0, 0, $3) \
         ON CONFLICT (person_id) DO UPDATE SET phc = $2, failures = 0, locked = 0, changed_at = $3",
    )
    .bind(person_id)
    .bind(phc)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

/// Replaces the hash only (rehash on login with new parameters).
pub async fn rehash_password(c: &mut Conn, person_id: &str, phc: &str) -> Result<()> {
    sqlx::query("UPDATE passwords SET phc = $2 WHERE person_id = $1")
        .bind(person_id)
        .bind(phc)
        .execute(c)
        .await?;
    Ok(())
}

/// Reads a person's password record.
pub async fn password(c: &mut Conn, person_id: &str) -> Result<Option<PasswordRecord>> {
    let row =
        sqlx::query("SELECT phc, failures, locked, changed_at FROM passwords WHERE person_id = $1")
            .bind(person_id)
            .fetch_optional(c)
            .await?;
    row.map(|r| {
        Ok(PasswordRecord {
            phc: r.try_get("phc")?,
            failures: r.try_get("failures")?,
            locked: r.try_get::<i64, _>("locked")? != 0,
            changed_at: r.try_get("changed_at")?,
        })
    })
    .transpose()
}

/// Counts a wrong password atomically and locks at `max`; returns (failures, locked).
pub async fn password_failed(c: &mut Conn, person_id: &str, max: u32) -> Result<(i64, bool)> {
    let row = sqlx::query(
        "UPDATE passwords SET failures = failures + 1, \
         locked = CASE WHEN failures + 1 >= $2 THEN 1 ELSE locked END \
         WHERE person_id = $1 RETURNING failures, locked",
    )
    .bind(person_id)
    .bind(i64::from(max))
    .fetch_optional(c)
    .await?
    .ok_or_else(|| StoreError::NotFound("password".into()))?;
    Ok((
        row.try_get("failures")?,
        row.try_get::<i64, _>("locked")? != 0,
    ))
}

/// Clears the failure counter after a right password.
pub async fn password_succeeded(c: &mut Conn, person_id: &str) -> Result<()> {
    sqlx::query("UPDATE passwords SET failures = 0 WHERE person_id = $1 AND failures <> 0")
        .bind(person_id)
        .execute(c)
        .await?;
    Ok(())
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
