//! The file transport, for development and tests: each message becomes `{dir}/{id}.json`
//! (owner-only: it may hold a code), where a test or a developer reads it.

use std::path::PathBuf;

use segl_store::outbox::Message;

use super::{Accepted, SendError};

/// Writes messages as JSON files into one directory.
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    /// A transport writing into `dir` (created, 0700, at the first message).
    pub fn new(dir: PathBuf) -> FileTransport {
        FileTransport { dir }
    }

    /// Writes `{id, channel, to, kind, subject (email), body, created_at}`.
    pub async fn send(&self, m: &Message) -> Result<Accepted, SendError> {
        let mut json = serde_json::json!({
            "id": m.id,
            "channel": m.channel,
            "to": m.recipient,
            "kind": m.kind,
            "body": m.body,
            "created_at": m.created_at,
        });
        if m.channel == "email" {
            json["subject"] = super::subject(&m.kind).into();
        }
        let dir = self.dir.clone();
        let name = format!("{}.json", m.id);
        tokio::task::spawn_blocking(move || {
            super::write_private(&dir, &name, json.to_string().as_bytes())
        })
        .await
        .map_err(|_| SendError::Retry("file: writer task failed".into()))?
        .map_err(|e| super::io_error("file", &e))?;
        Ok(Accepted::default())
    }
}
