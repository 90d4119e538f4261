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
}

/// Runs the same call on whichever connection the transaction has.
macro_rules! on_conn {
    ($txn:ident, $c:ident => $call:expr) => {
        match &mut $txn.conn {
            TxnConn::Lite($c) => $call,
            TxnConn::Sqlx($c) => $call,
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
        on_conn!(self, c => c.fetch_optional(sql, args, map).await)
    }

    async fn fetch_all<T: Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        map: Map<T>,
    ) -> Result<Vec<T>> {
        on_conn!(self, c => c.fetch_all(sql, args, map).await)
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        on_conn!(self, c => c.execute(sql, args).await)
    }

    fn is_postgres(&self) -> bool {
        match &self.conn {
            TxnConn::Lite(_) => false,
            TxnConn::Sqlx(c) => c.is_postgres(),
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
