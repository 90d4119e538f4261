//! What the OIDC provider hands out: authorization codes, access and refresh tokens,
//! single sign-on sessions, pushed authorization requests and used client-assertion ids.
//!
//! Only SHA-256 hashes of codes and tokens are stored, so a copy of the database does not
//! contain a usable credential. Every code and token carries a `grant_id`; reusing a code
//! or a rotated refresh token revokes everything with that id.

use sqlx::Row;

use crate::audit::{self, Event, OwnedEvent};
use crate::db::{Db, Lite, at_once};
use crate::persons::{self, Person};
use crate::{Conn, Result, Store, StoreError, flag};

// One SQL text per statement, shared by the sqlx functions and the SQLite writer's.
const INSERT_CODE: &str = "INSERT INTO auth_codes (code_hash, client_id, person_id, grant_id, grant_data, expires_at, used_at) \
     VALUES ($1, $2, $3, $4, $5, $6, NULL)";
const INSERT_ACCESS: &str = "INSERT INTO access_tokens (token_hash, client_id, person_id, grant_id, grant_data, expires_at, revoked) \
     VALUES ($1, $2, $3, $4, $5, $6, 0)";
const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, client_id, person_id, grant_id, grant_data, expires_at, used_at, revoked) \
     VALUES ($1, $2, $3, $4, $5, $6, NULL, 0)";
// Spending an unspent, unexpired value; with RETURNING, a redemption.
macro_rules! spend_fresh_code {
    () => {
        "UPDATE auth_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2"
    };
}
macro_rules! spend_fresh_refresh {
    () => {
        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND revoked = 0 \
         AND expires_at > $2"
    };
}
const SPEND_FRESH_CODE: &str = spend_fresh_code!();
const SPEND_FRESH_REFRESH: &str = spend_fresh_refresh!();
const REDEEM_CODE: &str = concat!(
    spend_fresh_code!(),
    " RETURNING code_hash, client_id, person_id, grant_id, grant_data, expires_at"
);
const REUSED_CODE: &str = "SELECT code_hash, client_id, person_id, grant_id, grant_data, expires_at FROM auth_codes \
     WHERE code_hash = $1 AND used_at IS NOT NULL";
const REDEEM_REFRESH: &str = concat!(
    spend_fresh_refresh!(),
    " RETURNING token_hash, client_id, person_id, grant_id, grant_data, expires_at"
);
const REUSED_REFRESH: &str = "SELECT token_hash, client_id, person_id, grant_id, grant_data, expires_at FROM refresh_tokens \
     WHERE token_hash = $1 AND used_at IS NOT NULL";
// The writer thread is SQLite's only writer while its transaction is open, so it can read
// first and write only what the decision needs.
const FRESH_CODE: &str = "SELECT code_hash, client_id, person_id, grant_id, grant_data, expires_at FROM auth_codes \
     WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2";
const FRESH_REFRESH: &str = "SELECT token_hash, client_id, person_id, grant_id, grant_data, expires_at FROM refresh_tokens \
     WHERE token_hash = $1 AND used_at IS NULL AND revoked = 0 AND expires_at > $2";
const SPEND_CODE: &str = "UPDATE auth_codes SET used_at = $2 WHERE code_hash = $1";
const SPEND_REFRESH: &str = "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1";
const REVOKE_ACCESS: &str =
    "UPDATE access_tokens SET revoked = 1 WHERE grant_id = $1 AND revoked = 0";
const REVOKE_REFRESH: &str =
    "UPDATE refresh_tokens SET revoked = 1 WHERE grant_id = $1 AND revoked = 0";

/// A stored code or token.
#[derive(Clone, Debug)]
pub struct TokenRow {
    /// Hash of the value.
    pub hash: String,
    /// The client.
    pub client_id: String,
    /// The person.
    pub person_id: String,
    /// Groups related codes and tokens.
    pub grant_id: String,
    /// The grant record (JSON of `segl_core::oidc::Grant`).
    pub grant_data: String,
    /// Expiry (unix seconds).
    pub expires_at: i64,
}

/// Outcome of redeeming a one-time value (code, refresh token).
#[derive(Clone, Debug)]
pub enum Redeem {
    /// First use: the row, now marked used.
    Fresh(TokenRow),
    /// Used before: the row, so the caller can revoke its grant.
    Reused(TokenRow),
    /// Unknown or expired.
    Invalid,
}

// Columns in the order of the RETURNING and SELECT lists above.
fn token_row(r: &dyn crate::db::Get) -> Result<TokenRow> {
    Ok(TokenRow {
        hash: r.text(0)?,
        client_id: r.text(1)?,
        person_id: r.text(2)?,
        grant_id: r.text(3)?,
        grant_data: r.text(4)?,
        expires_at: r.int(5)?,
    })
}

fn token_row_sync(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        hash: r.get(0)?,
        client_id: r.get(1)?,
        person_id: r.get(2)?,
        grant_id: r.get(3)?,
        grant_data: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

/// Stores an authorization code.
pub async fn insert_code(c: &mut impl Db, t: &TokenRow) -> Result<()> {
    insert_token(c, INSERT_CODE, t).await
}

/// Redeems a code once: the first caller gets [`Redeem::Fresh`], every later one
/// [`Redeem::Reused`].
pub async fn redeem_code(c: &mut Conn, hash: &str, now: i64) -> Result<Redeem> {
    redeem(c, Kind::Code, hash, now).await
}

async fn redeem(c: &mut Conn, kind: Kind, hash: &str, now: i64) -> Result<Redeem> {
    let (redeem, reused) = kind.sql();
    let used = sqlx::query(redeem)
        .bind(hash)
        .bind(now)
        .fetch_optional(&mut *c)
        .await?;
    if let Some(r) = used {
        return Ok(Redeem::Fresh(token_row(&r)?));
    }
    let again = sqlx::query(reused).bind(hash).fetch_optional(c).await?;
    match again {
        Some(r) => Ok(Redeem::Reused(token_row(&r)?)),
        None => Ok(Redeem::Invalid),
    }
}

/// Stores an access token.
// PostgreSQL: a first redemption and the token's person in one statement; the columns of
// `token_row`, then the person's (NULL when the person was deleted).
static REDEEM_WITH_PERSON: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
    [REDEEM_CODE, REDEEM_REFRESH].map(|redeem| {
        format!(
            "WITH r AS ({redeem}) SELECT r.*, p.id, p.sub, p.nin, p.name, p.birthdate, p.phone, \
             p.email, p.created_at FROM r LEFT JOIN persons p ON p.id = r.person_id"
        )
    })
});

// PostgreSQL: a grant's new tokens and its audit event in one statement, without and with
// a refresh token (see `audit::append_pg_after`).
static ISSUE_PG: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
    [
        audit::append_pg_after(&[("access", INSERT_ACCESS)]),
        audit::append_pg_after(&[("access", INSERT_ACCESS), ("refresh", INSERT_REFRESH)]),
    ]
});

fn token_args(t: &TokenRow) -> [crate::db::Arg<'_>; 6] {
    [
        (&t.hash).into(),
        (&t.client_id).into(),
        (&t.person_id).into(),
        (&t.grant_id).into(),
        (&t.grant_data).into(),
        t.expires_at.into(),
    ]
}

/// Stores a grant's new tokens and records its event: one round trip on PostgreSQL.
async fn issue(c: &mut impl crate::db::Db, t: &NewTokens, now: i64) -> Result<()> {
    let event = t.event.as_event();
    // SQLite; and a batch, which sends these writes as one statement anyway.
    if !c.is_postgres() || c.deferred().is_some() {
        insert_access(c, &t.access).await?;
        if let Some(r) = &t.refresh {
            insert_refresh(c, r).await?;
        }
        audit::append(c, &event, now).await?;
        return Ok(());
    }
    let data = event.data.to_string();
    let mut args = audit::append_pg_args(&event, &data, now).to_vec();
    args.extend(token_args(&t.access));
    if let Some(r) = &t.refresh {
        args.extend(token_args(r));
    }
    let sql = &ISSUE_PG[usize::from(t.refresh.is_some())];
    audit::run_append_pg(c, sql, &args).await?;
    Ok(())
}

/// Redeems a code or refresh token and, on its first use, reads its person: one round
/// trip on PostgreSQL, two elsewhere.
async fn redeem_with_person(
    c: &mut Conn,
    kind: Kind,
    hash: &str,
    now: i64,
) -> Result<(Redeem, Option<Person>)> {
    use crate::db::Db as _;
    if !c.is_postgres() {
        let redeemed = redeem(c, kind, hash, now).await?;
        let person = match &redeemed {
            Redeem::Fresh(row) => persons::by_id(c, &row.person_id).await?,
            _ => None,
        };
        return Ok((redeemed, person));
    }
    let sql = &REDEEM_WITH_PERSON[match kind {
        Kind::Code => 0,
        Kind::Refresh => 1,
    }];
    let fresh = c
        .fetch_optional(sql, &[hash.into(), now.into()], row_with_person)
        .await?;
    if let Some((row, person)) = fresh {
        return Ok((Redeem::Fresh(row), person));
    }
    let (_, reused) = kind.sql();
    let again = sqlx::query(reused).bind(hash).fetch_optional(c).await?;
    Ok(match again {
        Some(r) => (Redeem::Reused(token_row(&r)?), None),
        None => (Redeem::Invalid, None),
    })
}

pub async fn insert_access(c: &mut impl Db, t: &TokenRow) -> Result<()> {
    insert_token(c, INSERT_ACCESS, t).await
}

async fn insert_token(c: &mut impl Db, sql: &'static str, t: &TokenRow) -> Result<()> {
    crate::db::write(c, sql, &token_args(t)).await
}

/// A live access token.
pub async fn access(c: &mut Conn, hash: &str, now: i64) -> Result<Option<TokenRow>> {
    let row = sqlx::query(
        "SELECT token_hash, client_id, person_id, grant_id, grant_data, expires_at FROM access_tokens \
         WHERE token_hash = $1 AND revoked = 0 AND expires_at > $2",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(c)
    .await?;
    row.as_ref().map(|r| token_row(r)).transpose()
}

/// Stores a refresh token.
pub async fn insert_refresh(c: &mut impl Db, t: &TokenRow) -> Result<()> {
    insert_token(c, INSERT_REFRESH, t).await
}

/// Redeems a refresh token once (rotation). A token presented again is
/// [`Redeem::Reused`]; a revoked or expired one [`Redeem::Invalid`].
pub async fn redeem_refresh(c: &mut Conn, hash: &str, now: i64) -> Result<Redeem> {
    redeem(c, Kind::Refresh, hash, now).await
}

/// Revokes every access and refresh token of a grant; returns how many.
pub async fn revoke_grant(c: &mut Conn, grant_id: &str) -> Result<u64> {
    let a = sqlx::query(REVOKE_ACCESS)
        .bind(grant_id)
        .execute(&mut *c)
        .await?
        .rows_affected();
    let r = sqlx::query(REVOKE_REFRESH)
        .bind(grant_id)
        .execute(c)
        .await?
        .rows_affected();
    Ok(a + r)
}

/// Which one-time value a grant redeems.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An authorization code.
    Code,
    /// A refresh token (rotated on every use).
    Refresh,
}

impl Kind {
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Kind::Code => (REDEEM_CODE, REUSED_CODE),
            Kind::Refresh => (REDEEM_REFRESH, REUSED_REFRESH),
        }
    }

    /// The audit event of a reuse.
    fn reuse_event(self) -> &'static str {
        match self {
            Kind::Code => "token.code_reuse",
            Kind::Refresh => "token.refresh_reuse",
        }
    }
}

/// Tokens to store for a grant, with the audit event that records them.
#[derive(Clone, Debug)]
pub struct NewTokens {
    /// The new access token.
    pub access: TokenRow,
    /// The new refresh token, if the grant has one.
    pub refresh: Option<TokenRow>,
    /// The audit event (`token.issued`, `token.refreshed`).
    pub event: OwnedEvent,
}

/// What the token endpoint decided about a first redemption.
#[derive(Clone, Debug)]
pub enum Decision {
    /// Store these tokens and record the event.
    Issue(Box<NewTokens>),
    /// Issue nothing. With `spend` the value stays used (a code whose PKCE check failed
    /// cannot be retried); without it, it is as if it had not been presented (a refresh
    /// token sent by another client stays valid for its owner).
    Refuse {
        /// Keep the value marked as used.
        spend: bool,
    },
    /// Issue nothing, keep the value used, and record why (a code presented with a wrong
    /// PKCE verifier, redirect URI or client: perhaps an intercepted one).
    Spend(Box<OwnedEvent>),
}

/// The outcome of [`Store::redeem_grant`].
#[derive(Debug)]
pub enum Redeemed<T> {
    /// First use; the caller's value, with its decision applied and committed.
    Fresh(T),
    /// Used before: every token of its grant is now revoked and the reuse is recorded.
    Reused,
    /// Unknown, revoked or expired.
    Invalid,
}

/// Decides, on the first use of a code or refresh token, what to issue; gets the stored row
/// and its person (None when the person was deleted). Runs inside the transaction, on the
/// SQLite writer thread for SQLite: keep it short and free of I/O.
pub type Decide<T> = Box<dyn FnOnce(&TokenRow, Option<&Person>) -> (Decision, T) + Send>;

impl Store {
    /// Redeems a code or refresh token and applies `decide`'s decision in one durable
    /// transaction. A reused value revokes its whole grant (RFC 6749 4.1.2, and refresh-token
    /// rotation per the OAuth security BCP) and is recorded in the audit log.
    pub async fn redeem_grant<T: Send + 'static>(
        &self,
        kind: Kind,
        hash: String,
        now: i64,
        decide: Decide<T>,
    ) -> Result<Redeemed<T>> {
        if let Some(w) = self.writer() {
            return w
                .run(Box::new(move |c| {
                    redeem_grant_sync(c, kind, &hash, now, decide)
                }))
                .await;
        }
        // PostgreSQL: read, decide, and write the outcome in one statement guarded by the
        // value still being unused; if another request spent it meanwhile, the transaction
        // below finds it reused.
        let decide = match self.backend() {
            crate::Backend::Postgres => {
                match self.redeem_batched(kind, &hash, now, decide).await? {
                    Batched::Done(value) => return Ok(Redeemed::Fresh(value)),
                    Batched::NotFresh(decide) => Some(decide),
                    Batched::Lost => None,
                }
            }
            crate::Backend::Sqlite => Some(decide),
        };
        let mut tx = self.begin().await?;
        let (redeemed, person) = redeem_with_person(&mut tx, kind, &hash, now).await?;
        let row = match redeemed {
            Redeem::Fresh(row) => row,
            Redeem::Reused(row) => {
                // Racing reuses of one token each revoke the whole grant; on PostgreSQL two
                // of them can lock its rows in a cycle ("deadlock detected", seen with twelve
                // at once), so they go one at a time per grant (SQLite has one writer). The
                // UPDATE that found the token used may still hold a lock on its row: having
                // waited for the row, PostgreSQL locks its newest version before checking the
                // WHERE again, and keeps that lock though nothing was updated. Waiting for the
                // grant's turn while holding it deadlocks with the reuse whose turn it is, so
                // the revocation starts a transaction of its own, holding no lock.
                tx.rollback().await?;
                let mut tx = self.begin().await?;
                if self.backend() == crate::Backend::Postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)")
                        .bind(&row.grant_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let revoked = revoke_grant(&mut tx, &row.grant_id).await?;
                audit::append(&mut tx, &reuse_event(kind, &row, revoked), now).await?;
                tx.commit().await?;
                return Ok(Redeemed::Reused);
            }
            Redeem::Invalid => return Ok(Redeemed::Invalid),
        };
        // Fresh again after the batch lost its race: only if the value were unspent, which
        // no statement of segl does. Nothing is issued.
        let Some(decide) = decide else {
            tx.rollback().await?;
            return Ok(Redeemed::Invalid);
        };
        // As on the writer thread: a panicking decision rolls back (tx is dropped).
        let (decision, value) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decide(&row, person.as_ref())
        }))
        .map_err(|_| StoreError::Internal("a grant's decision panicked".into()))?;
        match decision {
            Decision::Issue(t) => {
                issue(&mut tx, &t, now).await?;
                tx.commit().await?;
            }
            Decision::Refuse { spend: true } => tx.commit().await?,
            Decision::Spend(e) => {
                audit::append(&mut tx, &e.as_event(), now).await?;
                tx.commit().await?;
            }
            Decision::Refuse { spend: false } => tx.rollback().await?,
        }
        Ok(Redeemed::Fresh(value))
    }
}

/// What [`Store::redeem_batched`] did.
enum Batched<T> {
    /// The value was fresh; the decision is written.
    Done(T),
    /// The value was not fresh when read: the transaction decides what it is.
    NotFresh(Decide<T>),
    /// The value was fresh when read and spent by another request before the write.
    Lost,
}

impl Store {
    /// PostgreSQL: a first redemption in two round trips instead of four. The value and its
    /// person are read outside any transaction; the decision's writes (spending the value,
    /// the new tokens, the audit event) are one statement that writes nothing unless the
    /// value is still unspent (see [`crate::db::Deferred`]).
    async fn redeem_batched<T: Send + 'static>(
        &self,
        kind: Kind,
        hash: &str,
        now: i64,
        decide: Decide<T>,
    ) -> Result<Batched<T>> {
        let (read, spend) = match kind {
            Kind::Code => (&*FRESH_WITH_PERSON[0], SPEND_FRESH_CODE),
            Kind::Refresh => (&*FRESH_WITH_PERSON[1], SPEND_FRESH_REFRESH),
        };
        let mut c = self.pool.acquire().await?;
        let fresh = c
            .fetch_optional(read, &[hash.into(), now.into()], row_with_person)
            .await?;
        let Some((row, person)) = fresh else {
            return Ok(Batched::NotFresh(decide));
        };
        let (decision, value) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decide(&row, person.as_ref())
        }))
        .map_err(|_| StoreError::Internal("a grant's decision panicked".into()))?;
        let mut held = crate::db::Deferred::default();
        let mut tx = crate::db::Txn::batch(&mut c, &mut held);
        let spend_args = [hash.into(), now.into()];
        match &decision {
            Decision::Issue(t) => {
                crate::db::execute_one(&mut tx, spend, &spend_args).await?;
                issue(&mut tx, t, now).await?;
            }
            Decision::Refuse { spend: true } => {
                crate::db::execute_one(&mut tx, spend, &spend_args).await?
            }
            Decision::Spend(e) => {
                crate::db::execute_one(&mut tx, spend, &spend_args).await?;
                audit::append(&mut tx, &e.as_event(), now).await?;
            }
            Decision::Refuse { spend: false } => {}
        }
        match crate::db::flush(&mut c, held).await {
            Ok(()) => Ok(Batched::Done(value)),
            Err(StoreError::Conflict) => Ok(Batched::Lost),
            Err(e) => Err(e),
        }
    }
}

// PostgreSQL: an unspent value and its person, read without spending it (columns as in
// `row_with_person`); SPEND_FRESH_* then spends it under the same conditions.
static FRESH_WITH_PERSON: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
    [FRESH_CODE, FRESH_REFRESH].map(|fresh| {
        format!(
            "SELECT r.*, p.id, p.sub, p.nin, p.name, p.birthdate, p.phone, p.email, p.created_at \
             FROM ({fresh}) r LEFT JOIN persons p ON p.id = r.person_id"
        )
    })
});

/// The columns of `token_row`, then the person's (NULL when the person was deleted).
fn row_with_person(r: &dyn crate::db::Get) -> Result<(TokenRow, Option<Person>)> {
    let row = token_row(r)?;
    let person = match r.opt_text(6)? {
        Some(_) => Some(persons::person_at(r, 6)?),
        None => None,
    };
    Ok((row, person))
}

fn reuse_event<'a>(kind: Kind, row: &'a TokenRow, revoked: u64) -> Event<'a> {
    Event {
        event: kind.reuse_event(),
        subject: Some(&row.person_id),
        client_id: Some(&row.client_id),
        data: serde_json::json!({"revoked": revoked}),
    }
}

/// [`Store::redeem_grant`] on the SQLite writer thread.
fn redeem_grant_sync<T>(
    c: &mut rusqlite::Connection,
    kind: Kind,
    hash: &str,
    now: i64,
    decide: Decide<T>,
) -> Result<Redeemed<T>> {
    use rusqlite::OptionalExtension;
    let (fresh, spend, reused) = match kind {
        Kind::Code => (FRESH_CODE, SPEND_CODE, REUSED_CODE),
        Kind::Refresh => (FRESH_REFRESH, SPEND_REFRESH, REUSED_REFRESH),
    };
    let unused = {
        let mut st = c.prepare_cached(fresh)?;
        crate::writer::bind(&mut st, &[&hash, &now])?;
        let mut rows = st.raw_query();
        match rows.next()? {
            Some(r) => Some(token_row_sync(r)?),
            None => None,
        }
    };
    let Some(row) = unused else {
        let again = c
            .prepare_cached(reused)?
            .query_row([hash], token_row_sync)
            .optional()?;
        let Some(row) = again else {
            return Ok(Redeemed::Invalid);
        };
        let mut revoked = 0;
        for sql in [REVOKE_ACCESS, REVOKE_REFRESH] {
            revoked += c.prepare_cached(sql)?.execute([&row.grant_id])? as u64;
        }
        at_once(audit::append(
            &mut Lite(c),
            &reuse_event(kind, &row, revoked),
            now,
        ))?;
        return Ok(Redeemed::Reused);
    };
    let person = at_once(persons::by_id(&mut Lite(c), &row.person_id))?;
    let (decision, value) = decide(&row, person.as_ref());
    let spent = !matches!(decision, Decision::Refuse { spend: false });
    if spent {
        let mut st = c.prepare_cached(spend)?;
        crate::writer::bind(&mut st, &[&hash, &now])?;
        st.raw_execute()?;
    }
    match decision {
        Decision::Issue(t) => {
            at_once(insert_token(&mut Lite(c), INSERT_ACCESS, &t.access))?;
            if let Some(r) = &t.refresh {
                at_once(insert_token(&mut Lite(c), INSERT_REFRESH, r))?;
            }
            at_once(audit::append(&mut Lite(c), &t.event.as_event(), now))?;
        }
        Decision::Spend(e) => {
            at_once(audit::append(&mut Lite(c), &e.as_event(), now))?;
        }
        Decision::Refuse { .. } => {}
    }
    Ok(Redeemed::Fresh(value))
}

/// A single sign-on session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Hash of the session cookie.
    pub id_hash: String,
    /// The person.
    pub person_id: String,
    /// When they authenticated.
    pub auth_time: i64,
    /// Level reached.
    pub acr: String,
    /// Methods used (JSON array).
    pub amr: Vec<String>,
    /// Expiry.
    pub expires_at: i64,
}

/// Starts a session.
pub async fn insert_session(c: &mut impl Db, s: &Session) -> Result<()> {
    let amr = session_amr(s)?;
    crate::db::write(c, INSERT_SESSION, &session_args(s, &amr)).await
}

const INSERT_SESSION: &str = "INSERT INTO sessions (id_hash, person_id, auth_time, acr, amr, expires_at, ended) \
     VALUES ($1, $2, $3, $4, $5, $6, 0)";

fn session_amr(s: &Session) -> Result<String> {
    serde_json::to_string(&s.amr).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn session_args<'a>(s: &'a Session, amr: &'a str) -> [crate::db::Arg<'a>; 6] {
    [
        (&s.id_hash).into(),
        (&s.person_id).into(),
        s.auth_time.into(),
        (&s.acr).into(),
        amr.into(),
        s.expires_at.into(),
    ]
}

// PostgreSQL: a finished login's session, its code and its audit event in one statement.
static LOGIN_PG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    audit::append_pg_after(&[("session", INSERT_SESSION), ("code", INSERT_CODE)])
});

/// Records a finished login: its single sign-on session, its authorization code and its
/// audit event (one round trip on PostgreSQL).
pub async fn record_login(
    c: &mut impl Db,
    session: &Session,
    code: &TokenRow,
    event: &Event<'_>,
    now: i64,
) -> Result<()> {
    // A batch sends these three with the step's other writes anyway.
    if !c.is_postgres() || c.deferred().is_some() {
        insert_session(c, session).await?;
        insert_code(c, code).await?;
        audit::append(c, event, now).await?;
        return Ok(());
    }
    let (data, amr) = (event.data.to_string(), session_amr(session)?);
    let mut args = audit::append_pg_args(event, &data, now).to_vec();
    args.extend(session_args(session, &amr));
    args.extend(token_args(code));
    audit::run_append_pg(c, &LOGIN_PG, &args).await?;
    Ok(())
}

/// A live session.
pub async fn session(c: &mut Conn, id_hash: &str, now: i64) -> Result<Option<Session>> {
    let row = sqlx::query(
        "SELECT id_hash, person_id, auth_time, acr, amr, expires_at FROM sessions \
         WHERE id_hash = $1 AND ended = 0 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(c)
    .await?;
    row.map(|r| {
        Ok(Session {
            id_hash: r.try_get("id_hash")?,
            person_id: r.try_get("person_id")?,
            auth_time: r.try_get("auth_time")?,
            acr: r.try_get("acr")?,
            amr: serde_json::from_str(&r.try_get::<String, _>("amr")?)
                .map_err(|e| StoreError::Corrupt(format!("session amr: {e}")))?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

/// Ends a session.
pub async fn end_session(c: &mut Conn, id_hash: &str) -> Result<bool> {
    let n = sqlx::query("UPDATE sessions SET ended = $2 WHERE id_hash = $1 AND ended = 0")
        .bind(id_hash)
        .bind(flag(true))
        .execute(c)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// Stores a pushed authorization request (RFC 9126).
pub async fn insert_par(
    c: &mut Conn,
    uri_hash: &str,
    client_id: &str,
    params: &str,
    expires_at: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO par_requests (uri_hash, client_id, params, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(uri_hash)
        .bind(client_id)
        .bind(params)
        .bind(expires_at)
        .execute(c)
        .await?;
    Ok(())
}

/// Takes a pushed request once: (client_id, params). Deleted on use, as RFC 9126 advises.
pub async fn take_par(c: &mut Conn, uri_hash: &str, now: i64) -> Result<Option<(String, String)>> {
    let row = sqlx::query("DELETE FROM par_requests WHERE uri_hash = $1 AND expires_at > $2 RETURNING client_id, params")
        .bind(uri_hash)
        .bind(now)
        .fetch_optional(c)
        .await?;
    row.map(|r| Ok((r.try_get("client_id")?, r.try_get("params")?)))
        .transpose()
}

/// Records a client assertion's `jti`; false when it was seen before (a replay).
pub async fn use_jti(c: &mut Conn, key: &str, expires_at: i64) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO used_jtis (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(expires_at)
    .execute(c)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Ends every session of the person and revokes every access and refresh token issued to
/// them; returns (sessions ended, tokens revoked).
pub async fn revoke_person(c: &mut impl Db, person_id: &str) -> Result<(u64, u64)> {
    let sessions = c
        .execute(
            "DELETE FROM sessions WHERE person_id = $1",
            &[person_id.into()],
        )
        .await?;
    let mut tokens = 0;
    for sql in [
        "UPDATE access_tokens SET revoked = 1 WHERE person_id = $1 AND revoked = 0",
        "UPDATE refresh_tokens SET revoked = 1 WHERE person_id = $1 AND revoked = 0",
    ] {
        tokens += c.execute(sql, &[person_id.into()]).await?;
    }
    // Codes not yet exchanged would mint new tokens: they go too.
    c.execute(
        "DELETE FROM auth_codes WHERE person_id = $1",
        &[person_id.into()],
    )
    .await?;
    Ok((sessions, tokens))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parameters_are_renumbered_in_one_pass() {
        assert!(super::ISSUE_PG[1].contains("VALUES ($12, $13, $14, $15, $16, $17, NULL, 0)"));
        assert!(super::ISSUE_PG[1].contains("VALUES ($6, $7, $8, $9, $10, $11, 0)"));
        assert!(super::LOGIN_PG.contains("VALUES ($12, $13, $14, $15, $16, $17, NULL)"));
    }
}
