//! `segl maintenance …`: declare, list and remove maintenance windows (issue 5). During a
//! window, ordering on its channel is refused with its message and the pages show it;
//! login, signing and existing eIDs are not affected. Every input is checked before the
//! database is opened; adding and removing are audited (`maintenance.added`,
//! `maintenance.removed`).

use std::process::ExitCode;

use clap::Subcommand;
use segl_core::maintenance::{self as rules, Channel, MaintenanceError, Window};
use segl_store::audit::{self, Event};
use segl_store::maintenance::{self, Stored};
use serde_json::json;

use crate::commands::{check_by, open, print_json};
use crate::{CliError, Global};

/// `segl maintenance …`
#[derive(Subcommand, Debug)]
pub enum MaintenanceCmd {
    /// Declare a window: ordering on the channel is refused with the message from --from
    /// to --to, and the pages show the message (from 24 hours before).
    Add {
        /// What closes: order-app (ordering for the app), order-card (ordering with a code
        /// device or card by letter) or order (every ordering channel).
        #[arg(long)]
        channel: String,
        /// Start, RFC 3339 (e.g. 2026-12-24T22:00:00Z) or `now`.
        #[arg(long)]
        from: String,
        /// End, RFC 3339 or `now`; later than --from and in the future.
        #[arg(long)]
        to: String,
        /// What people read (1 to 500 characters, one line).
        #[arg(long)]
        message: String,
        /// Who adds it, for the audit log (an operator's name or id).
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// List the windows that have not ended (with --all, ended ones too).
    List {
        /// Include windows that have ended.
        #[arg(long)]
        all: bool,
    },
    /// Remove a window (ordering on its channel opens again within seconds).
    Remove {
        /// The window's id, as `add` and `list` print it.
        id: String,
        /// Who removes it, for the audit log.
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

fn now() -> i64 {
    segl_server::system_now()
}

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failure(e.to_string())
}

fn rfc3339(t: i64) -> String {
    segl_server::flow::rfc3339(t)
}

/// A time argument, with the flag named in the message.
fn parse_time(flag: &str, s: &str, now: i64) -> Result<i64, CliError> {
    rules::parse_time(s, now).map_err(|_| {
        CliError::Input(format!(
            "{flag} '{s}' is not a time: use RFC 3339 such as 2026-12-24T22:00:00Z, or now"
        ))
    })
}

/// The window the arguments describe, or a message naming the flag that is wrong.
fn window(
    channel: &str,
    from: &str,
    to: &str,
    message: &str,
    now: i64,
) -> Result<Window, CliError> {
    let channel = Channel::parse(channel).map_err(|_| {
        CliError::Input(format!(
            "--channel '{channel}' is not one of order-app, order-card, order"
        ))
    })?;
    let from = parse_time("--from", from, now)?;
    let to = parse_time("--to", to, now)?;
    let id = uuid::Uuid::new_v4().to_string();
    Window::new(id, channel, from, to, message, now).map_err(|e| {
        CliError::Input(match e {
            MaintenanceError::EndsBeforeStart => format!(
                "--to ({}) must be later than --from ({})",
                rfc3339(to),
                rfc3339(from)
            ),
            MaintenanceError::EndsInPast => format!(
                "--to ({}) is in the past; a window must end in the future",
                rfc3339(to)
            ),
            MaintenanceError::EmptyMessage => "--message is empty".into(),
            e => format!("--message: {e}"),
        })
    })
}

fn view(s: &Stored, now: i64) -> serde_json::Value {
    let w = &s.window;
    json!({
        "id": w.id(),
        "channel": w.channel(),
        "from": rfc3339(w.from()),
        "to": rfc3339(w.to()),
        "message": w.message(),
        "active": w.is_active(now),
        "ended": w.has_ended(now),
        "created_at": rfc3339(s.created_at),
        "created_by": s.created_by,
    })
}

fn audit_data(s: &Stored, by: &str) -> serde_json::Value {
    let w = &s.window;
    json!({
        "id": w.id(),
        "channel": w.channel(),
        "from": w.from(),
        "to": w.to(),
        "message": w.message(),
        "by": by,
    })
}

/// `segl maintenance …`
pub async fn maintenance(g: &Global, cmd: MaintenanceCmd) -> Result<ExitCode, CliError> {
    match cmd {
        MaintenanceCmd::Add {
            channel,
            from,
            to,
            message,
            by,
        } => {
            let by = check_by(&by)?;
            let w = window(&channel, &from, &to, &message, now())?;
            let o = open(g).await?;
            let t = now();
            let stored = Stored {
                window: w,
                created_at: t,
                created_by: by.clone(),
            };
            let mut tx = o.store.begin().await?;
            maintenance::insert(&mut tx, &stored.window, &by, t).await?;
            audit::append(
                &mut tx,
                &Event {
                    event: "maintenance.added",
                    subject: None,
                    client_id: None,
                    data: audit_data(&stored, &by),
                },
                t,
            )
            .await?;
            tx.commit().await.map_err(fail)?;
            let w = &stored.window;
            if g.json {
                print_json(&view(&stored, t));
            } else {
                println!(
                    "maintenance window {} added: {} closed from {} to {} (UTC)",
                    w.id(),
                    w.channel(),
                    rfc3339(w.from()),
                    rfc3339(w.to())
                );
            }
        }
        MaintenanceCmd::List { all } => {
            let o = open(g).await?;
            let t = now();
            let mut c = o.store.conn().await?;
            let list = if all {
                maintenance::all(&mut c).await?
            } else {
                maintenance::current(&mut c, t).await?
            };
            if g.json {
                let v: Vec<_> = list.iter().map(|s| view(s, t)).collect();
                print_json(&json!(v));
            } else if list.is_empty() {
                println!("no maintenance windows");
            } else {
                for s in &list {
                    let w = &s.window;
                    let when = if w.is_active(t) {
                        "ACTIVE"
                    } else if w.has_ended(t) {
                        "ended"
                    } else {
                        "planned"
                    };
                    println!(
                        "{}  {:<10} {} .. {}  {:<7}  {}",
                        w.id(),
                        w.channel(),
                        rfc3339(w.from()),
                        rfc3339(w.to()),
                        when,
                        w.message()
                    );
                }
            }
        }
        MaintenanceCmd::Remove { id, by } => {
            let id = id.trim().to_string();
            if id.is_empty() {
                return Err(CliError::Input("the window's id is empty".into()));
            }
            let by = check_by(&by)?;
            let o = open(g).await?;
            let t = now();
            let mut tx = o.store.begin().await?;
            let removed = maintenance::remove(&mut tx, &id).await?;
            audit::append(
                &mut tx,
                &Event {
                    event: "maintenance.removed",
                    subject: None,
                    client_id: None,
                    data: audit_data(&removed, &by),
                },
                t,
            )
            .await?;
            tx.commit().await.map_err(fail)?;
            if g.json {
                print_json(&json!({"removed": view(&removed, t)}));
            } else {
                println!("maintenance window {id} removed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
