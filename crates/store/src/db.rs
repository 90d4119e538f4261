//! One way to run a statement on either driver, so a repository function is written once
//! and runs on sqlx (PostgreSQL, and SQLite outside the hot paths) and on the SQLite
//! writer thread's rusqlite connection alike.
//!
//! Why: through sqlx each SQLite statement is a round trip to sqlx's worker thread, and a
//! login step has several. [`crate::Store::transact`] runs a whole step as one job on the
//! writer thread instead, where each statement is a plain function call. The methods are
//! `async` so the same code also awaits sqlx; on the writer thread nothing ever waits, so
//! the step's future completes in its first poll.

use std::future::Future;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Conn, Result, StoreError};

/// A parameter bound to `$1`, `$2`, … in order.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    /// An integer.
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
    /// SQL NULL in an integer column (PostgreSQL wants the parameter's type).
    NullInt,
    /// SQL NULL in a text column.
    NullText,
    /// SQL NULL in a blob column.
    NullBlob,
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::NullText, Arg::Text)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().into()
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Int(v) => ValueRef::Integer(v),
            Arg::Text(v) => ValueRef::Text(v.as_bytes()),
            Arg::Blob(v) => ValueRef::Blob(v),
            Arg::NullInt | Arg::NullText | Arg::NullBlob => ValueRef::Null,
        }))
    }
}

/// A row being read, column by position.
pub trait Get {
    /// An integer column.
    fn int(&self, i: usize) -> Result<i64>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    /// A text column.
    fn text(&self, i: usize) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    /// A blob column.
    fn blob(&self, i: usize) -> Result<Vec<u8>>;
    /// A nullable blob column.
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>>;
}

/// Turns a row into a value.
pub type Map<T> = fn(&dyn Get) -> Result<T>;

/// Runs statements with `$N` placeholders.
pub trait Db: Send {
    /// The first row, if any.
    fn fetch_optional<T: Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> impl Future<Output = Result<Option<T>>> + Send;
    /// Every row.
    fn fetch_all<T: Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> impl Future<Output = Result<Vec<T>>> + Send;
    /// Rows changed, for statements that return no rows (use `fetch_*` with `RETURNING`).
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> impl Future<Output = Result<u64>> + Send;
    /// Whether this is PostgreSQL, for the few statements written for it alone (where one
    /// statement saves a round trip that SQLite, in process, does not make).
    fn is_postgres(&self) -> bool;
    /// The writes held back to be sent as one statement, in a body run by
    /// [`crate::Store::batched`]; `None` elsewhere, where each statement runs when called.
    fn deferred(&mut self) -> Option<&mut Deferred> {
        None
    }
}

/// A write that must change exactly one row (a version or counter guard): any other count is
/// [`StoreError::Conflict`], and the caller's transaction is undone. In a batched body it is
/// held back and its count checked when the batch is sent.
pub async fn execute_one(c: &mut impl Db, sql: &str, args: &[Arg<'_>]) -> Result<()> {
    if let Some(d) = c.deferred() {
        return d.push(sql, args, true);
    }
    match c.execute(sql, args).await? {
        1 => Ok(()),
        _ => Err(StoreError::Conflict),
    }
}

/// A write whose count the caller does not need; held back in a batched body.
pub async fn write(c: &mut impl Db, sql: &str, args: &[Arg<'_>]) -> Result<()> {
    if let Some(d) = c.deferred() {
        return d.push(sql, args, false);
    }
    c.execute(sql, args).await.map(drop)
}

// ---------------------------------------------------------------------------------------
// Batched writes (PostgreSQL)

/// An owned [`Arg`], for a write held back until the batch is sent.
#[derive(Clone, Debug)]
enum Owned {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    NullInt,
    NullText,
    NullBlob,
}

impl Owned {
    fn of(a: &Arg<'_>) -> Owned {
        match *a {
            Arg::Int(v) => Owned::Int(v),
            Arg::Text(v) => Owned::Text(v.to_string()),
            Arg::Blob(v) => Owned::Blob(v.to_vec()),
            Arg::NullInt => Owned::NullInt,
            Arg::NullText => Owned::NullText,
            Arg::NullBlob => Owned::NullBlob,
        }
    }

    fn arg(&self) -> Arg<'_> {
        match self {
            Owned::Int(v) => Arg::Int(*v),
            Owned::Text(v) => Arg::Text(v),
            Owned::Blob(v) => Arg::Blob(v),
            Owned::NullInt => Arg::NullInt,
            Owned::NullText => Arg::NullText,
            Owned::NullBlob => Arg::NullBlob,
        }
    }
}

/// One held-back write.
#[derive(Debug)]
struct Held {
    sql: String,
    args: Vec<Owned>,
    /// Must change exactly one row.
    one_row: bool,
}

/// The writes of a batched body, sent as one statement when the body is done: each write a
/// data-modifying CTE, the audit entry (at most one) two more, and a final
/// `segl_require(...)` (migration 0014) that fails the whole statement, and so undoes every
/// write, when a guarded write did not change exactly one row.
///
/// One statement runs in one snapshot, so a batch may not do what needs the writes before it
/// to be visible: the body's reads run at once, before any write is held (a read after one is
/// refused), and a table is updated at most once (PostgreSQL would apply only one of two
/// updates of a row). Anything else is [`StoreError::NeedsTransaction`], with nothing
/// written. The reads run outside any transaction, so whatever a write relies on from them
/// must be in its guard.
#[derive(Debug, Default)]
pub struct Deferred {
    writes: Vec<Held>,
    audit: Option<Vec<Owned>>,
    /// Tables updated or deleted from so far.
    changed: Vec<String>,
}

impl Deferred {
    /// Whether nothing has been held back yet.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.audit.is_none()
    }

    pub(crate) fn push(&mut self, sql: &str, args: &[Arg<'_>], one_row: bool) -> Result<()> {
        let words: Vec<&str> = sql.split_whitespace().take(3).collect();
        let target = match words.as_slice() {
            [verb, table, ..] if verb.eq_ignore_ascii_case("UPDATE") => Some(*table),
            [verb, from, table]
                if verb.eq_ignore_ascii_case("DELETE") && from.eq_ignore_ascii_case("FROM") =>
            {
                Some(*table)
            }
            [verb, into, _]
                if verb.eq_ignore_ascii_case("INSERT") && into.eq_ignore_ascii_case("INTO") =>
            {
                None
            }
            _ => return Err(StoreError::NeedsTransaction),
        };
        // A write with its own RETURNING or CTEs can't be counted by the batch, and an upsert
        // may update a row another write of the batch touches.
        if ["RETURNING", "WITH ", "ON CONFLICT"]
            .iter()
            .any(|w| sql.contains(w))
        {
            return Err(StoreError::NeedsTransaction);
        }
        if let Some(t) = target {
            if self.changed.iter().any(|c| c == t) {
                return Err(StoreError::NeedsTransaction);
            }
            self.changed.push(t.to_string());
        }
        self.writes.push(Held {
            sql: sql.to_string(),
            args: args.iter().map(Owned::of).collect(),
            one_row,
        });
        Ok(())
    }

    /// Holds back an audit entry: the arguments $1–$5 of `audit::APPEND_PG_CTES`. The chain's
    /// head row is updated once per entry, so a batch has at most one.
    pub(crate) fn audit(&mut self, args: &[Arg<'_>]) -> Result<()> {
        if self.audit.is_some() {
            return Err(StoreError::NeedsTransaction);
        }
        self.audit = Some(args.iter().map(Owned::of).collect());
        Ok(())
    }

    /// The one statement and its arguments, in order.
    fn statement(&self) -> (String, Vec<Arg<'_>>) {
        let mut ctes = Vec::new();
        let mut args = Vec::new();
        let mut required = Vec::new();
        for (i, w) in self.writes.iter().enumerate() {
            let (sql, n) = crate::audit::shift_params(&w.sql, args.len());
            if w.one_row {
                ctes.push(format!("w{i} AS ({sql} RETURNING 1)"));
                required.push(format!("(SELECT count(*) FROM w{i}) = 1"));
            } else {
                ctes.push(format!("w{i} AS ({sql})"));
            }
            debug_assert_eq!(n, w.args.len(), "parameters of a held-back write");
            args.extend(w.args.iter().map(Owned::arg));
        }
        if let Some(a) = &self.audit {
            let (sql, _) = crate::audit::shift_params(crate::audit::APPEND_PG_CTES, args.len());
            ctes.push(sql);
            args.extend(a.iter().map(Owned::arg));
        }
        let check = if required.is_empty() {
            "TRUE".to_string()
        } else {
            required.join(" AND ")
        };
        (
            format!("WITH {} SELECT segl_require({check})", ctes.join(", ")),
            args,
        )
    }
}

/// Sends a batch's writes: nothing when there are none, a lone write as it is, else one
/// statement. A guard that failed is [`StoreError::Conflict`], with nothing written.
pub(crate) async fn flush(c: &mut Conn, d: Deferred) -> Result<()> {
    if let ([w], None) = (d.writes.as_slice(), &d.audit) {
        let args: Vec<Arg<'_>> = w.args.iter().map(Owned::arg).collect();
        return if w.one_row {
            execute_one(c, &w.sql, &args).await
        } else {
            write(c, &w.sql, &args).await
        };
    }
    if d.is_empty() {
        return Ok(());
    }
    let (sql, args) = d.statement();
    match c.fetch_optional(&sql, &args, |_| Ok(())).await {
        Err(StoreError::Db(sqlx::Error::Database(e))) if e.code().as_deref() == Some("SG409") => {
            Err(StoreError::Conflict)
        }
        other => other.map(drop),
    }
}

/// A read a batch may run at once: a plain SELECT (no CTE, which could hide a write).
fn plain_select(sql: &str) -> bool {
    sql.trim_start()
        .get(..7)
        .is_some_and(|w| w.eq_ignore_ascii_case("SELECT "))
}

// ---------------------------------------------------------------------------------------
// sqlx

fn sqlx_query<'q>(
    sql: &str,
    args: &[Arg<'_>],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for a in args {
        q = match *a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Blob(v) => q.bind(v.to_vec()),
            Arg::NullInt => q.bind(Option::<i64>::None),
            Arg::NullText => q.bind(Option::<String>::None),
            Arg::NullBlob => q.bind(Option::<Vec<u8>>::None),
        };
    }
    q
}

/// Each driver reads a column by position with its own typed getter.
macro_rules! get_by {
    ($row:ty, $get:ident) => {
        impl Get for $row {
            fn int(&self, i: usize) -> Result<i64> {
                Ok(self.$get(i)?)
            }
            fn opt_int(&self, i: usize) -> Result<Option<i64>> {
                Ok(self.$get(i)?)
            }
            fn text(&self, i: usize) -> Result<String> {
                Ok(self.$get(i)?)
            }
            fn opt_text(&self, i: usize) -> Result<Option<String>> {
                Ok(self.$get(i)?)
            }
            fn blob(&self, i: usize) -> Result<Vec<u8>> {
                Ok(self.$get(i)?)
            }
            fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
                Ok(self.$get(i)?)
            }
        }
    };
}
get_by!(AnyRow, try_get);
get_by!(rusqlite::Row<'_>, get);

impl Db for Conn {
    async fn fetch_optional<T: Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> Result<Option<T>> {
        let row = sqlx_query(sql, args).fetch_optional(&mut *self).await?;
        row.as_ref().map(|r| map(r)).transpose()
    }

    async fn fetch_all<T: Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> Result<Vec<T>> {
        let rows = sqlx_query(sql, args).fetch_all(&mut *self).await?;
        rows.iter().map(|r| map(r)).collect()
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(sqlx_query(sql, args)
            .execute(&mut *self)
            .await?
            .rows_affected())
    }

    fn is_postgres(&self) -> bool {
        self.backend_name() == "PostgreSQL"
    }
}

/// Transactions and pooled connections run their statements on the connection they hold.
macro_rules! deref_db {
    ($($ty:ty),*) => {$(
        impl Db for $ty {
            fn fetch_optional<T: Send>(
                &mut self,
                sql: &str,
                args: &[Arg<'_>],
                map: Map<T>,
            ) -> impl Future<Output = Result<Option<T>>> + Send {
                Db::fetch_optional(&mut **self, sql, args, map)
            }
            fn fetch_all<T: Send>(
                &mut self,
                sql: &str,
                args: &[Arg<'_>],
                map: Map<T>,
            ) -> impl Future<Output = Result<Vec<T>>> + Send {
                Db::fetch_all(&mut **self, sql, args, map)
            }
            fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> impl Future<Output = Result<u64>> + Send {
                Db::execute(&mut **self, sql, args)
            }
            fn is_postgres(&self) -> bool {
                Db::is_postgres(&**self)
            }
        }
    )*};
}
deref_db!(
    sqlx::Transaction<'_, sqlx::Any>,
    sqlx::pool::PoolConnection<sqlx::Any>
);

// ---------------------------------------------------------------------------------------
// rusqlite (the SQLite writer thread)

/// The writer thread's connection, inside its open transaction.
pub struct Lite<'a>(pub(crate) &'a mut rusqlite::Connection);

impl Lite<'_> {
    fn prepare(&self, sql: &str, args: &[Arg<'_>]) -> Result<rusqlite::CachedStatement<'_>> {
        let mut st = self.0.prepare_cached(sql)?;
        let params: Vec<&dyn rusqlite::ToSql> =
            args.iter().map(|a| a as &dyn rusqlite::ToSql).collect();
        crate::writer::bind(&mut st, &params)?;
        Ok(st)
    }
}

impl Db for Lite<'_> {
    async fn fetch_optional<T: Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> Result<Option<T>> {
        let mut st = self.prepare(sql, args)?;
        let mut rows = st.raw_query();
        match rows.next()? {
            Some(r) => Ok(Some(map(r)?)),
            None => Ok(None),
        }
    }

    async fn fetch_all<T: Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.prepare(sql, args)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(map(r)?);
        }
        Ok(out)
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let mut st = self.prepare(sql, args)?;
        Ok(st.raw_execute()? as u64)
    }

    fn is_postgres(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------
// Transactions over either driver

/// The connection a [`crate::Store::transact`] body runs on.
pub struct Txn<'a> {
    conn: TxnConn<'a>,
}

enum TxnConn<'a> {
    /// The SQLite writer thread's connection.
    Lite(Lite<'a>),
    /// A sqlx transaction.
    Sqlx(&'a mut Conn),
    /// A PostgreSQL connection outside any transaction: reads run at once, writes are held
    /// back (see [`Deferred`]).
    Batch(&'a mut Conn, &'a mut Deferred),
}

impl<'a> Txn<'a> {
    pub(crate) fn lite(c: &'a mut rusqlite::Connection) -> Txn<'a> {
        Txn {
            conn: TxnConn::Lite(Lite(c)),
        }
    }

    pub(crate) fn sqlx(c: &'a mut Conn) -> Txn<'a> {
        Txn {
            conn: TxnConn::Sqlx(c),
        }
    }

    pub(crate) fn batch(c: &'a mut Conn, d: &'a mut Deferred) -> Txn<'a> {
        Txn {
            conn: TxnConn::Batch(c, d),
        }
    }
}

/// Runs the same call on whichever connection the transaction has; a batch runs only a
/// plain read, and only before it holds any write.
macro_rules! on_conn {
    ($txn:ident, $sql:ident, $c:ident => $call:expr) => {
        match &mut $txn.conn {
            TxnConn::Lite($c) => $call,
            TxnConn::Sqlx($c) => $call,
            TxnConn::Batch($c, d) => {
                if !d.is_empty() || !plain_select($sql) {
                    return Err(StoreError::NeedsTransaction);
                }
                $call
            }
        }
    };
}

impl Db for Txn<'_> {
    async fn fetch_optional<T: Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> Result<Option<T>> {
        on_conn!(self, sql, c => c.fetch_optional(sql, args, map).await)
    }

    async fn fetch_all<T: Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> Result<Vec<T>> {
        on_conn!(self, sql, c => c.fetch_all(sql, args, map).await)
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        match &mut self.conn {
            TxnConn::Lite(c) => c.execute(sql, args).await,
            TxnConn::Sqlx(c) => c.execute(sql, args).await,
            // The count is not known until the batch is sent.
            TxnConn::Batch(..) => Err(StoreError::NeedsTransaction),
        }
    }

    fn is_postgres(&self) -> bool {
        match &self.conn {
            TxnConn::Lite(_) => false,
            TxnConn::Sqlx(c) => c.is_postgres(),
            TxnConn::Batch(..) => true,
        }
    }

    fn deferred(&mut self) -> Option<&mut Deferred> {
        match &mut self.conn {
            TxnConn::Batch(_, d) => Some(d),
            _ => None,
        }
    }
}

/// A transaction body: borrows the connection for as long as its future runs.
pub type Body<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Polls a future once; `None` if it would wait. On the writer thread a body never waits
/// (every statement is a plain call), so `None` means a body awaited something else.
pub(crate) fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Runs a repository function on the writer thread's connection, where it never waits.
pub(crate) fn at_once<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    poll_once(f).unwrap_or_else(|| Err(waited()))
}

/// The error of a body that awaited I/O on the writer thread (a bug).
pub(crate) fn waited() -> StoreError {
    StoreError::Internal("a transaction body waited for I/O on the SQLite writer thread".into())
}
