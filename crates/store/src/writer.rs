//! The SQLite group-commit writer: one OS thread owns a rusqlite connection and runs the
//! hot write paths (the token endpoint and the login steps) as jobs.
//!
//! Why: through sqlx each statement is a round trip to sqlx's SQLite worker thread, and
//! each commit is an fsync; a refresh grant has about eight statements, so the disk and the
//! thread hand-offs, not SQLite, set the ceiling. Here the statements of a job run back to
//! back on the thread that owns the connection, and every job waiting when a transaction
//! starts shares it: one `BEGIN IMMEDIATE … COMMIT`, so one fsync, for the whole batch.
//! No job's result is handed back before the COMMIT of its batch has returned, and a
//! durable job's batch is fsynced before that (a batch of relaxed jobs only is not; see
//! `Store::relaxed`). If a grant's statement fails, or SQLite ends the transaction by
//! itself, the batch is rolled back and every job in it fails: a grant reads first and
//! writes only what it keeps, so its failures are I/O errors, not refusals, and a savepoint
//! per grant would cost more than it contains. A login step has a savepoint of its own,
//! because its errors (a flow changed under it) are ordinary.
//!
//! The sqlx connection stays in use for everything else; the two connections take
//! SQLite's write lock in turn (`busy_timeout`), and WAL lets readers run beside either.
//!
//! The writer does not copy the WAL back into the database file: that copy (and its fsync)
//! would stall every grant waiting behind it. A checkpoint thread with its own connection
//! does it beside the writer (PASSIVE: it never blocks a writer). Under steady load that
//! never quite catches up, so once the WAL passes a size the writer finishes the copy
//! between two batches (RESTART: only what the passive rounds left), and the next commit
//! starts the WAL from its beginning.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// Jobs taken into one transaction at most; bounds the latency a long batch adds.
const MAX_BATCH: usize = 128;
/// How often the checkpoint thread copies the WAL back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// WAL frames (pages of 4 KiB) beyond which the writer finishes a checkpoint: about
/// 48 MiB, under [`WAL_KEEP_BYTES`], so a WAL started again overwrites blocks the file
/// keeps. A restart waits for readers and the database file's fsync, so not much more often
/// than that (with 4,096 frames, refresh grants were about 6 % slower).
const RESTART_AFTER_FRAMES: i64 = 12_288;
/// The size a WAL file grown by a burst is cut back to when SQLite starts it again.
const WAL_KEEP_BYTES: i64 = 64 << 20;

/// A job's statements. A job reads before it writes and writes only what it decided to
/// keep, so it needs no savepoint of its own; if any statement fails, the whole batch is
/// rolled back and every job in it fails, so nothing is ever half written.
pub(crate) type JobFn<T> = Box<dyn FnOnce(&mut Connection) -> Result<T> + Send>;

/// A job in a savepoint of its own: it returns its value and whether to keep its writes.
/// Rolling back to the savepoint undoes only this job, so its error (a flow changed under
/// it) never fails the other jobs of its batch. (A refusal such as a wrong code is not an
/// error: it is kept, with its counters and audit events.)
pub(crate) type IsolatedFn<T> = Box<dyn FnOnce(&mut Connection) -> (T, bool) + Send>;

trait Work: Send {
    /// Runs in the open transaction; false when a statement failed.
    fn run(&mut self, c: &mut Connection) -> bool;
    /// Whether what it wrote must be on disk before its answer leaves.
    fn durable(&self) -> bool {
        true
    }
    /// Hands the result back once the transaction is settled.
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct Task<T> {
    f: Option<JobFn<T>>,
    out: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send> Work for Task<T> {
    fn run(&mut self, c: &mut Connection) -> bool {
        let Some(f) = self.f.take() else { return true };
        // A job that panics fails its batch instead of ending the thread every grant needs.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a grant's decision panicked".into())));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), String>) {
        let result = match (self.out, committed) {
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(StoreError::Writer(e)),
            (None, Ok(())) => Err(StoreError::Writer("the job did not run".into())),
        };
        // The caller may have gone away (client disconnected); its writes stand.
        let _ = self.reply.send(result);
    }
}

struct Isolated<T> {
    f: Option<IsolatedFn<T>>,
    out: Option<T>,
    durable: bool,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send> Work for Isolated<T> {
    fn run(&mut self, c: &mut Connection) -> bool {
        let Some(f) = self.f.take() else { return true };
        if c.execute_batch("SAVEPOINT job").is_err() {
            return false;
        }
        let Ok((out, keep)) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)))
        else {
            // Its writes are undone below; the batch fails, as for a panicking grant.
            let _ = c.execute_batch("ROLLBACK TO job; RELEASE job");
            return false;
        };
        self.out = Some(out);
        let end = if keep {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        // An I/O error can end SQLite's transaction under us: then the batch has failed.
        c.execute_batch(end).is_ok() && !c.is_autocommit()
    }

    fn durable(&self) -> bool {
        self.durable
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), String>) {
        let result = match (self.out, committed) {
            (Some(v), Ok(())) => Ok(v),
            (_, Err(e)) => Err(StoreError::Writer(e)),
            (None, Ok(())) => Err(StoreError::Writer("the job did not run".into())),
        };
        let _ = self.reply.send(result);
    }
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Work>>,
    /// The checkpoint thread stops once the last handle is gone.
    _alive: std::sync::Arc<()>,
}

impl Writer {
    /// Opens the database file (already migrated by sqlx) and starts the thread.
    pub(crate) fn start(path: &Path) -> Result<Writer> {
        let conn = open(path)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = open(path)?;
        let (jobs, rx) = mpsc::channel::<Box<dyn Work>>();
        let alive = std::sync::Arc::new(());
        let watch = std::sync::Arc::downgrade(&alive);
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map(drop)
                .map_err(|e| StoreError::Writer(format!("cannot start the {name} thread: {e}")))
        };
        let restart_due = std::sync::Arc::new(AtomicBool::new(false));
        let due = restart_due.clone();
        spawn(
            "segl-sqlite-writer",
            Box::new(move || run(conn, rx, &restart_due)),
        )?;
        spawn(
            "segl-sqlite-checkpoint",
            Box::new(move || {
                while watch.upgrade().is_some() {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    match checkpoint(&checkpointer) {
                        Ok(restart) => due.fetch_or(restart, Ordering::Relaxed),
                        Err(e) => {
                            tracing::warn!(error = %e, "SQLite checkpoint failed; will retry");
                            false
                        }
                    };
                }
            }),
        )?;
        Ok(Writer {
            jobs,
            _alive: alive,
        })
    }

    /// Runs `f` in the next group commit and returns its value once that commit is on disk.
    pub(crate) async fn run<T: Send + 'static>(&self, f: JobFn<T>) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.send(
            Box::new(Task {
                f: Some(f),
                out: None,
                reply,
            }),
            rx,
        )
        .await
    }

    /// Runs `f` in a savepoint of the next group commit; its writes are kept only when it
    /// says so. The value comes back once the batch has committed, and, if `durable`, once
    /// that commit is on disk (a batch is fsynced when any of its jobs is durable).
    pub(crate) async fn run_isolated<T: Send + 'static>(
        &self,
        f: IsolatedFn<T>,
        durable: bool,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.send(
            Box::new(Isolated {
                f: Some(f),
                out: None,
                durable,
                reply,
            }),
            rx,
        )
        .await
    }

    async fn send<T>(&self, job: Box<dyn Work>, rx: oneshot::Receiver<Result<T>>) -> Result<T> {
        let stopped = || StoreError::Writer("the writer thread has stopped".into());
        self.jobs.send(job).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// One round of the checkpoint thread: a passive checkpoint, which never waits for the
/// writer. Under steady load it never catches up either: the writer appends while it
/// copies, so SQLite never starts the WAL again from its beginning, and the file grew by
/// every commit (hundreds of megabytes in a minute of refresh grants), each commit
/// allocating new blocks. True once the WAL holds more than [`RESTART_AFTER_FRAMES`]: the
/// writer then finishes the copy itself, between two batches ([`restart`]).
fn checkpoint(c: &Connection) -> Result<bool> {
    let log: i64 = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))?;
    Ok(log > RESTART_AFTER_FRAMES)
}

/// Copies what the passive rounds left (a few frames, and the database file's fsync) and
/// waits for readers to leave the WAL, so the next commit writes from its beginning again,
/// over blocks the file already has, and cuts the file back to [`WAL_KEEP_BYTES`]. Run by
/// the writer between batches: a checkpointer asking for the write lock would wait for a
/// gap in the writer's batches that steady load seldom leaves.
fn restart(c: &Connection) -> Result<()> {
    c.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    Ok(())
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    // FULL: the COMMIT returns only once the WAL is fsynced, so every answer is durable.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )?;
    conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // The default page cache (2 MiB) on purpose: a larger one makes every commit slower,
    // as SQLite walks the whole cache at the end of each transaction.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Box<dyn Work>>, restart_due: &AtomicBool) {
    // The connection's `synchronous` setting, switched only when a batch needs the other.
    let mut full = true;
    while let Ok(first) = rx.recv() {
        // A transaction left open by a failed ROLLBACK would refuse every later BEGIN.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if restart_due.swap(false, Ordering::Relaxed)
            && let Err(e) = restart(&conn)
        {
            tracing::warn!(error = %e, "SQLite WAL restart failed; will retry");
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A batch of relaxed jobs only (login-flow progress) commits without the fsync; it
        // is still atomic, and the next durable commit syncs it too. SQLite takes the mode
        // only between transactions, so it is set before BEGIN.
        let durable = batch.iter().any(|j| j.durable());
        let switched = if durable == full {
            Ok(())
        } else {
            let mode = if durable { "FULL" } else { "NORMAL" };
            conn.pragma_update(None, "synchronous", mode)
                .map(|()| full = durable)
        };
        let committed = match switched.and_then(|()| conn.execute_batch("BEGIN IMMEDIATE")) {
            Ok(()) => {
                let mut failed = false;
                for job in &mut batch {
                    // Once a statement has failed, or SQLite has ended the transaction by
                    // itself (a full disk, an I/O error), the rest do not run: each gets the
                    // batch's error, and nothing of the batch is kept. (Run outside the
                    // transaction, a job's statements would each commit on their own.)
                    if failed || conn.is_autocommit() {
                        failed = true;
                        break;
                    }
                    failed = !job.run(&mut conn);
                }
                if failed || conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err("a statement failed; the batch was rolled back".to_string())
                } else {
                    match conn.execute_batch("COMMIT") {
                        Ok(()) => Ok(()),
                        Err(e) => {
                            let _ = conn.execute_batch("ROLLBACK");
                            Err(format!("commit failed: {e}"))
                        }
                    }
                }
            }
            Err(e) => Err(format!("cannot begin a transaction: {e}")),
        };
        if let Err(e) = &committed {
            tracing::error!(error = %e, jobs = batch.len(), "SQLite group commit failed");
        }
        for job in batch {
            job.finish(committed.clone());
        }
    }
}

/// The database file named by a `sqlite:` URL (`sqlite://path?mode=rwc`), if it names one.
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Binds `params` to the `$1`, `$2`, … placeholders of `stmt`, so one SQL text serves sqlx
/// (on both backends) and rusqlite. SQLite numbers `$N` parameters by first appearance, not
/// by N, so binding by position would be wrong whenever `$2` comes before `$1`.
pub(crate) fn bind(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: &[&dyn rusqlite::ToSql],
) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let idx = stmt
            .parameter_index(&name)?
            .ok_or_else(|| StoreError::Writer(format!("statement has no parameter {name}")))?;
        stmt.raw_bind_parameter(idx, p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_bytes(db: &Path) -> u64 {
        std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    #[test]
    fn a_grown_wal_is_copied_back_and_cut_to_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let writer = open(&db).unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        let checkpointer = open(&db).unwrap();
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB NOT NULL)")
            .unwrap();
        // One burst of about 80 MiB: more frames than RESTART_AFTER_FRAMES, a file larger
        // than WAL_KEEP_BYTES.
        writer.execute_batch("BEGIN").unwrap();
        for _ in 0..80 {
            writer
                .execute("INSERT INTO t (b) VALUES (zeroblob(1048576))", [])
                .unwrap();
        }
        writer.execute_batch("COMMIT").unwrap();
        assert!(wal_bytes(&db) > WAL_KEEP_BYTES as u64, "{}", wal_bytes(&db));

        assert!(checkpoint(&checkpointer).unwrap(), "a restart is due");
        restart(&writer).unwrap();
        // Everything was copied back, so the next commit starts the WAL again from its
        // beginning and cuts the file back to the limit.
        let (log, copied): (i64, i64) = checkpointer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(log, copied);
        writer
            .execute("INSERT INTO t (b) VALUES (x'00')", [])
            .unwrap();
        assert!(
            wal_bytes(&db) <= WAL_KEEP_BYTES as u64,
            "{}",
            wal_bytes(&db)
        );
        let log: i64 = checkpointer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap();
        assert!(log < 16, "the WAL did not start again: {log} frames");
        let n: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 81);
    }
}
