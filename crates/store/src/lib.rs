//! segl-store: persistence for segl, SQLite by default and PostgreSQL for scale-out.
//!
//! One set of queries serves both backends: they go through sqlx's `Any` driver with `$N`
//! placeholders (which sqlx's SQLite driver also understands), times are unix seconds and
//! flags are 0/1 integers. The two migration folders (`migrations/sqlite`,
//! `migrations/postgres`) are kept side by side and differ only in type names.
//!
//! Repository functions take a connection, so a handler can run several of them in one
//! transaction; the modules are laid out by table: [`persons`], [`devices`], [`apps`],
//! [`clients`], [`flows`], [`grants`], [`audit`]. Those on the hot paths take any [`db::Db`]:
//! written once, they run on sqlx and on the SQLite writer thread's rusqlite connection,
//! where [`Store::transact`] runs a whole login step as one group-committed job.
#![forbid(unsafe_code)]

pub mod apps;
pub mod audit;
pub mod clients;
pub mod contact;
pub mod db;
pub mod devices;
pub mod flows;
pub mod grants;
pub mod maintenance;
pub mod orders;
pub mod outbox;
pub mod persons;
pub mod pki;
pub mod sign;
mod writer;

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use segl_crypto::seal::SealKey;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};

pub use sqlx::AnyConnection as Conn;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or failed; the detail is for the log, not for clients.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL names a backend segl does not support.
    #[error("unsupported database URL (use sqlite://… or postgres://…)")]
    UnsupportedUrl,
    /// A row that must be unique exists already.
    #[error("{0} already exists")]
    Duplicate(String),
    /// A row that must exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// The row changed under us (another request won the race).
    #[error("concurrent update, try again")]
    Conflict,
    /// A batched body (see [`Store::batched`]) did what only a transaction can do: it read
    /// after a write, wanted a count, or wrote one row twice. Nothing was written; run the
    /// body again with [`Store::transact`].
    #[error("this work needs a transaction")]
    NeedsTransaction,
    /// A stored record could not be read (corrupt or from an unknown version).
    #[error("stored record is unreadable: {0}")]
    Corrupt(String),
    /// SQLite refused or failed on the writer thread; the detail is for the log.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A bug: code run inside a transaction panicked; the transaction was rolled back.
    #[error("internal error: {0}")]
    Internal(String),
    /// The SQLite writer thread failed or stopped.
    #[error("database writer: {0}")]
    Writer(String),
    /// A sealed secret could not be opened (wrong seal key for this database).
    #[error(
        "a sealed secret could not be opened; is the data directory's seal key the one this database was made with?"
    )]
    Seal,
}

/// Result of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database is behind the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend named by a database URL.
    pub fn from_url(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// The handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Read-only connections: on SQLite a pool of its own, so reads run beside the writer
    /// (WAL) instead of queueing behind it on the single read-write connection.
    reads: AnyPool,
    backend: Backend,
    seal: std::sync::Arc<SealKey>,
    /// The group-commit writer of a SQLite file database (see [`writer`]).
    writer: Option<writer::Writer>,
    clients: std::sync::Arc<clients::Cache>,
    flows: std::sync::Arc<flows::Cache>,
    /// The URL, for PostgreSQL's LISTEN connection (never logged: it may hold a password).
    url: std::sync::Arc<str>,
}

/// PostgreSQL connections in the pool unless configured: twice this host's cores, at least
/// 4 (PostgreSQL's own rule of thumb, about twice the database server's cores). More
/// connections than the server has cores to run them only add backends that wake and sleep
/// in turn: on 2 cores shared with PostgreSQL, 16 connections cost its server about 14 %
/// more CPU per login than 4 (docs/benchmarks.md, fifth session).
pub fn default_pg_connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    (2 * cores).max(4)
}

/// How long a PostgreSQL connection may sit idle in the pool before it is pinged when
/// handed out again.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A transaction; dereferences to a connection for the repository functions.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The SQLite URL for a database file (created when missing).
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

fn migrations(backend: Backend) -> Vec<Migration> {
    let files: &[(i64, &str, &str)] = match backend {
        Backend::Sqlite => &[
            (
                1,
                "init",
                include_str!("../migrations/sqlite/0001_init.sql"),
            ),
            (
                2,
                "audit head trigger",
                include_str!("../migrations/sqlite/0002_audit_head_trigger.sql"),
            ),
            (
                3,
                "app devices",
                include_str!("../migrations/sqlite/0003_app_devices.sql"),
            ),
            (
                4,
                "block requests",
                include_str!("../migrations/sqlite/0004_block_requests.sql"),
            ),
            (
                5,
                "outbox",
                include_str!("../migrations/sqlite/0005_outbox.sql"),
            ),
            (6, "pki", include_str!("../migrations/sqlite/0006_pki.sql")),
            (
                7,
                "sign",
                include_str!("../migrations/sqlite/0007_sign.sql"),
            ),
            (
                8,
                "person block",
                include_str!("../migrations/sqlite/0008_person_block.sql"),
            ),
            (
                9,
                "maintenance",
                include_str!("../migrations/sqlite/0009_maintenance.sql"),
            ),
            (
                10,
                "outbox delivery",
                include_str!("../migrations/sqlite/0010_outbox_delivery.sql"),
            ),
            (
                11,
                "orders",
                include_str!("../migrations/sqlite/0011_orders.sql"),
            ),
            (
                12,
                "contact change",
                include_str!("../migrations/sqlite/0012_contact_change.sql"),
            ),
        ],
        Backend::Postgres => &[
            (
                1,
                "init",
                include_str!("../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "audit head trigger",
                include_str!("../migrations/postgres/0002_audit_head_trigger.sql"),
            ),
            (
                3,
                "app devices",
                include_str!("../migrations/postgres/0003_app_devices.sql"),
            ),
            (
                4,
                "block requests",
                include_str!("../migrations/postgres/0004_block_requests.sql"),
            ),
            (
                5,
                "outbox",
                include_str!("../migrations/postgres/0005_outbox.sql"),
            ),
            (
                6,
                "pki",
                include_str!("../migrations/postgres/0006_pki.sql"),
            ),
            (
                7,
                "sign",
                include_str!("../migrations/postgres/0007_sign.sql"),
            ),
            (
                8,
                "person block",
                include_str!("../migrations/postgres/0008_person_block.sql"),
            ),
            (
                9,
                "maintenance",
                include_str!("../migrations/postgres/0009_maintenance.sql"),
            ),
            (
                10,
                "outbox delivery",
                include_str!("../migrations/postgres/0010_outbox_delivery.sql"),
            ),
            (
                11,
                "orders",
                include_str!("../migrations/postgres/0011_orders.sql"),
            ),
            (
                12,
                "contact change",
                include_str!("../migrations/postgres/0012_contact_change.sql"),
            ),
            (
                13,
                "audit append in one statement",
                include_str!("../migrations/postgres/0013_audit_one_statement.sql"),
            ),
            (
                14,
                "batched writes",
                include_str!("../migrations/postgres/0014_batched_writes.sql"),
            ),
        ],
    };
    files
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                sqlx::AssertSqlSafe(*sql).into_sql_str(),
                false,
            )
        })
        .collect()
}

use sqlx::SqlSafeStr;

impl Store {
    /// Connects, applies pending migrations and returns the store. `seal` protects secrets
    /// at rest (code-device seeds). On PostgreSQL the pool holds [`default_pg_connections`].
    pub async fn open(url: &str, seal: SealKey) -> Result<Store> {
        Store::open_pooled(url, seal, default_pg_connections()).await
    }

    /// [`Store::open`] with `pg_connections` connections in the pool on PostgreSQL (at
    /// least 1; SQLite ignores it).
    pub async fn open_pooled(url: &str, seal: SealKey, pg_connections: u32) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let opts = AnyConnectOptions::from_str(url)?;
        let pool = match backend {
            // One connection: SQLite has one writer anyway, and a single connection never
            // sees SQLITE_BUSY, which under load costs more than the queueing it replaces.
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    // An in-process database cannot hang up; the ping would be a hand-off
                    // to the connection's thread and back.
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            // FULL: a commit is on disk before the client hears of it.
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(pg_connections.max(1))
                    .acquire_timeout(Duration::from_secs(30))
                    // sqlx pings every connection it hands out: a round trip that wakes the
                    // server, as costly as a statement. A connection used in the last
                    // second is taken as alive (as HikariCP does); if it died since, that
                    // one statement fails and the connection is dropped.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PING_AFTER_IDLE {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(opts)
                    .await?
            }
        };
        let migrator = Migrator {
            migrations: Cow::Owned(migrations(backend)),
            ..Migrator::DEFAULT
        };
        migrator.run(&pool).await?;
        let reads = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA query_only = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            Ok(())
                        })
                    })
                    .connect_with(AnyConnectOptions::from_str(url)?)
                    .await?
            }
            Backend::Postgres => pool.clone(),
        };
        let writer = match (backend, writer::sqlite_path(url)) {
            (Backend::Sqlite, Some(path)) => Some(writer::Writer::start(&path)?),
            _ => None,
        };
        Ok(Store {
            pool,
            reads,
            backend,
            seal: std::sync::Arc::new(seal),
            writer,
            clients: Default::default(),
            flows: Default::default(),
            url: url.into(),
        })
    }

    /// On PostgreSQL, a connection listening on `channel` (LISTEN/NOTIFY fans pushes out
    /// across nodes); `None` on SQLite, which has one node.
    pub async fn listen(&self, channel: &str) -> Result<Option<sqlx::postgres::PgListener>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut l = sqlx::postgres::PgListener::connect(&self.url).await?;
        l.listen(channel).await?;
        Ok(Some(l))
    }

    /// On PostgreSQL, `NOTIFY channel, payload` (delivered to every listening node, this
    /// one included); nothing on SQLite.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let mut c = self.pool.acquire().await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// The SQLite writer, when this is a SQLite file database.
    pub(crate) fn writer(&self) -> Option<&writer::Writer> {
        self.writer.as_ref()
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction. On SQLite it takes the write lock at once, so two
    /// transactions never deadlock upgrading a read lock.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Runs `body` in one transaction and returns its value once the transaction is durable.
    /// The body's writes are kept when it returns `Ok` and undone when it returns `Err`.
    ///
    /// On a SQLite file the whole body runs as one job of the group-commit writer (in a
    /// savepoint of its own), so a multi-statement step costs one hand-off between threads
    /// and shares its fsync with the jobs beside it. The body must therefore only await the
    /// [`db::Db`] it is given: anything else that waits is refused as a bug.
    pub async fn transact<T, E, F>(&self, body: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'a> FnOnce(db::Txn<'a>) -> db::Body<'a, std::result::Result<T, E>> + Send + 'static,
    {
        self.transact_with(true, body).await
    }

    /// Runs a body of reads and at most one write, of state a power cut may take back
    /// (a login flow's progress: the person repeats a step).
    /// - On SQLite it is a job of the writer thread, committed without the fsync unless a
    ///   durable job shares its batch. The commit is atomic either way, and the next
    ///   durable commit makes it durable too.
    /// - On PostgreSQL one write needs no transaction around it: the body runs on a pooled
    ///   connection, each statement committing on its own (and durably: a separate pool
    ///   with `synchronous_commit = off` made no difference that could be measured here).
    ///
    /// Never for credentials, counters, tokens or audit events: use [`Store::transact`].
    pub async fn relaxed<T, E, F>(&self, body: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'a> FnOnce(db::Txn<'a>) -> db::Body<'a, std::result::Result<T, E>> + Send + 'static,
    {
        if self.writer().is_some() {
            return self.transact_with(false, body).await;
        }
        let mut c = self.pool.acquire().await.map_err(StoreError::from)?;
        body(db::Txn::sqlx(&mut c)).await
    }

    /// Runs `body` as [`Store::transact`] does, but on PostgreSQL without a transaction: its
    /// reads run at once and its writes are sent together, as one statement, when it returns
    /// `Ok` (see [`db::Deferred`]). That saves the round trips of `BEGIN`, `COMMIT` and each
    /// write. A body that needs a transaction after all gets
    /// [`StoreError::NeedsTransaction`], and one whose guarded write found its row changed
    /// gets [`StoreError::Conflict`]; either way nothing was written, and the caller runs it
    /// again with [`Store::transact`]. On SQLite this is `transact`.
    pub async fn batched<T, E, F>(&self, body: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'a> FnOnce(db::Txn<'a>) -> db::Body<'a, std::result::Result<T, E>> + Send + 'static,
    {
        if self.backend != Backend::Postgres {
            return self.transact(body).await;
        }
        let mut c = self.pool.acquire().await.map_err(StoreError::from)?;
        let mut held = db::Deferred::default();
        let out = body(db::Txn::batch(&mut c, &mut held)).await?;
        db::flush(&mut c, held).await?;
        Ok(out)
    }

    async fn transact_with<T, E, F>(&self, durable: bool, body: F) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'a> FnOnce(db::Txn<'a>) -> db::Body<'a, std::result::Result<T, E>> + Send + 'static,
    {
        if let Some(w) = self.writer() {
            let job = move |conn: &mut rusqlite::Connection| {
                let out = db::poll_once(body(db::Txn::lite(conn)))
                    .unwrap_or_else(|| Err(db::waited().into()));
                let keep = out.is_ok();
                (out, keep)
            };
            return w.run_isolated(Box::new(job), durable).await?;
        }
        let mut tx = self.begin().await?;
        let out = body(db::Txn::sqlx(&mut tx)).await;
        match out {
            Ok(v) => {
                tx.commit().await.map_err(StoreError::from)?;
                Ok(v)
            }
            Err(e) => {
                // Dropping the transaction rolls back too; saying so frees the connection now.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// A pooled connection for reads outside a transaction.
    pub async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.pool.acquire().await?)
    }

    /// A pooled connection that may only read (a write fails on SQLite). Prefer it for
    /// look-ups on hot paths.
    pub async fn read(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.reads.acquire().await?)
    }

    /// The key that seals secrets at rest.
    pub fn seal(&self) -> &SealKey {
        &self.seal
    }

    /// Checks the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *c).await?;
        Ok(())
    }

    /// Closes the pool (graceful shutdown).
    pub async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }

    /// Deletes expired flows, codes, tokens and used client-assertion ids.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut n = 0;
        for sql in [
            "DELETE FROM flows WHERE expires_at < $1",
            "DELETE FROM auth_codes WHERE expires_at < $1",
            "DELETE FROM access_tokens WHERE expires_at < $1",
            "DELETE FROM refresh_tokens WHERE expires_at < $1",
            "DELETE FROM par_requests WHERE expires_at < $1",
            "DELETE FROM used_jtis WHERE expires_at < $1",
            "DELETE FROM sessions WHERE expires_at < $1",
        ] {
            // Keep a day of grace so reuse of an expired code or token is still detected.
            n += sqlx::query(sql)
                .bind(now - 86_400)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

impl StoreError {
    /// Whether a unique constraint refused the write, on either backend (the [`db::Db`]
    /// trait's errors: sqlx's for PostgreSQL, rusqlite's on SQLite's writer).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(db)) => db.is_unique_violation(),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::ConstraintViolation
            }
            _ => false,
        }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Duplicate`].
pub(crate) fn map_unique(e: sqlx::Error, what: impl Into<String>) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Duplicate(what.into());
    }
    StoreError::Db(e)
}

/// A [`StoreError`] from the [`db::Db`] trait, as [`StoreError::Duplicate`] when a unique
/// constraint refused the write (two writers racing past a `WHERE NOT EXISTS`).
pub(crate) fn duplicate_if_unique(e: StoreError, what: &str) -> StoreError {
    if e.is_unique_violation() {
        StoreError::Duplicate(what.into())
    } else {
        e
    }
}

/// 0/1 integer flags.
pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}
