//! A fixed pool of threads for password hashing.
//!
//! Argon2id at OWASP parameters allocates 19 MiB per hash. On tokio's blocking pool each
//! hash may land on a new thread, and glibc keeps each thread's freed buffers in its own
//! arena, so resident memory grew by hundreds of megabytes under load. A fixed pool, one
//! thread per core, bounds both the concurrent hashes and the memory kept between them.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// The pool; cheap to share behind an `Arc`.
pub struct HashPool {
    tx: SyncSender<Job>,
}

/// The pool is saturated or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// More hashes are queued than the pool accepts; the caller should answer 503.
    #[error("too many password checks are waiting; try again shortly")]
    Busy,
    /// The pool's threads have stopped.
    #[error("the password-hashing pool has stopped")]
    Stopped,
}

impl HashPool {
    /// Starts `threads` workers with room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> HashPool {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("segl-hash-{i}"))
                .spawn(move || worker(&rx));
        }
        HashPool { tx }
    }

    /// Queues `f` at once; the receiver yields its result.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, PoolError> {
        let (otx, orx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = otx.send(f());
        });
        match self.tx.try_send(job) {
            Ok(()) => Ok(orx),
            Err(TrySendError::Full(_)) => Err(PoolError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(PoolError::Stopped),
        }
    }

    /// Runs `f` on a pool thread and waits for its result without blocking the runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        self.submit(f)?.await.map_err(|_| PoolError::Stopped)
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_refuses_when_full() {
        let pool = HashPool::new(1, 1);
        assert_eq!(pool.run(|| 41 + 1).await.unwrap(), 42);
        // Block the only worker, fill the one queue slot; the next job is refused.
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let blocked = pool
            .submit(move || {
                let _ = started_tx.send(());
                let _ = hold_rx.recv();
            })
            .unwrap();
        started_rx.recv().unwrap();
        let queued = pool.submit(|| 1).unwrap();
        assert!(matches!(pool.submit(|| 2), Err(PoolError::Busy)));
        hold_tx.send(()).unwrap();
        blocked.await.unwrap();
        assert_eq!(queued.await.unwrap(), 1);
    }
}
