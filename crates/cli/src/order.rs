//! `segl order …`: support's side of eID orders (issue 5): find an order by its number or
//! the person's national identity number, work the manual review queue, and send new
//! activation codes (with the delivery state of the ones sent, from the outbox).

use std::process::ExitCode;

use clap::Subcommand;
use segl_core::order::{OrderNumber, OrderState};
use segl_server::order::{self, Approval};
use segl_store::orders::{self, Order};
use serde_json::json;

use crate::commands::{api_error, check_by, open, print_json};
use crate::{CliError, Global};

/// `segl order …`
#[derive(Subcommand, Debug)]
pub enum OrderCmd {
    /// List orders, oldest first (the review queue with --state pending_review).
    List {
        /// Only orders in this state: awaiting_guardian, pending_review, approved,
        /// activated, rejected, refused, expired.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Show one order with the messages that carried its codes and their delivery state.
    Show {
        /// The order number (12 digits, spaces and dashes allowed).
        number: String,
    },
    /// Decide an order in the manual review queue after checking the person's document.
    Review {
        /// The order number.
        number: String,
        /// The document was checked and matches: approve (the codes go out).
        #[arg(long, conflicts_with = "reject")]
        approve: bool,
        /// Reject, with the reason the person is told.
        #[arg(long, value_name = "REASON")]
        reject: Option<String>,
        /// The support agent deciding, for the audit log.
        #[arg(long)]
        by: String,
    },
    /// Send new activation codes for an approved order (lost letter, codes locked); the
    /// old codes stop working.
    ResendCodes {
        /// The order number.
        number: String,
        /// The support agent, for the audit log.
        #[arg(long)]
        by: String,
    },
}

fn now() -> i64 {
    segl_server::system_now()
}

fn number(s: &str) -> Result<OrderNumber, CliError> {
    OrderNumber::parse(s).map_err(|e| CliError::Input(e.to_string()))
}

/// Support's view: the public view plus who ordered and the document check.
fn support_view(o: &Order) -> serde_json::Value {
    let mut v = order::view(o);
    v["name"] = json!(o.name);
    v["phone"] = json!(o.phone);
    v["email"] = json!(o.email);
    v["address"] = json!(o.address);
    v["evidence_summary"] = json!(o.evidence_summary);
    v["decided_by"] = json!(o.decided_by);
    v["has_guardian"] = json!(o.guardian_nin.is_some());
    v["guardian_decided_at"] = json!(o.guardian_decided_at.map(segl_server::flow::rfc3339));
    v["code_failures"] = json!(o.code_failures);
    v["code_device"] = json!(o.device_serial);
    v
}

fn print_line(o: &Order) {
    let n = OrderNumber::parse(&o.number).map_or(o.number.clone(), |n| n.grouped());
    let reason = o
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    println!(
        "{n}  {:<17} {:<4} {:<9} {:<6} {}{reason}",
        o.state,
        o.kind,
        o.delivery,
        o.evidence,
        segl_server::flow::rfc3339(o.created_at)
    );
}

/// `segl order …`
pub async fn order(g: &Global, cmd: OrderCmd) -> Result<ExitCode, CliError> {
    match cmd {
        OrderCmd::List { state, limit } => {
            if let Some(s) = &state
                && OrderState::parse(s).is_none()
            {
                return Err(CliError::Input(format!(
                    "--state '{s}' is not one of awaiting_guardian, pending_review, approved, \
                     activated, rejected, refused, expired"
                )));
            }
            if !(1..=10_000).contains(&limit) {
                return Err(CliError::Input("--limit must be 1 to 10000".into()));
            }
            let o = open(g).await?;
            let list = orders::list(&mut *o.store.conn().await?, state.as_deref(), limit).await?;
            if g.json {
                print_json(&json!(list.iter().map(support_view).collect::<Vec<_>>()));
            } else if list.is_empty() {
                println!("no orders");
            } else {
                list.iter().for_each(print_line);
            }
        }
        OrderCmd::Show { number: n } => {
            let n = number(&n)?;
            let o = open(g).await?;
            let mut c = o.store.conn().await?;
            let found = orders::by_number(&mut *c, n.as_str())
                .await?
                .ok_or_else(|| CliError::Input(format!("no order has the number {n}")))?;
            let messages = match &found.person_id {
                Some(p) => segl_store::outbox::for_person(&mut *c, o.store.seal(), p)
                    .await?
                    .into_iter()
                    .filter(|m| m.kind == "order.activation_code")
                    .collect(),
                None => Vec::new(),
            };
            if g.json {
                let mut v = support_view(&found);
                v["messages"] = json!(messages);
                print_json(&v);
            } else {
                print_line(&found);
                if let Some(s) = &found.evidence_summary {
                    println!("  document: {s}");
                }
                if let Some(d) = &found.device_serial {
                    println!("  code device: {d}");
                }
                for m in &messages {
                    println!(
                        "  {} {} {}: {} after {} attempt(s)",
                        segl_server::flow::rfc3339(m.created_at),
                        m.channel,
                        m.id,
                        m.state,
                        m.attempts
                    );
                }
            }
        }
        OrderCmd::Review {
            number: n,
            approve,
            reject,
            by,
        } => {
            let n = number(&n)?;
            let by = check_by(&by)?;
            if !approve && reject.is_none() {
                return Err(CliError::Input("say --approve or --reject REASON".into()));
            }
            let o = open(g).await?;
            let (found, outcome) =
                order::review(&o.store, n.as_str(), approve, reject.as_deref(), &by, now())
                    .await
                    .map_err(api_error)?;
            if g.json {
                print_json(&support_view(&found));
            } else {
                match outcome {
                    Approval::Approved => {
                        println!("order {n} approved; the codes are on their way")
                    }
                    Approval::Rejected(r) => println!("order {n} rejected: {r}"),
                    Approval::Waiting(r) => println!("order {n} still waiting: {r}"),
                }
            }
        }
        OrderCmd::ResendCodes { number: n, by } => {
            let n = number(&n)?;
            let by = check_by(&by)?;
            let o = open(g).await?;
            let found = order::resend_codes(&o.store, n.as_str(), &by, now())
                .await
                .map_err(api_error)?;
            if g.json {
                print_json(&support_view(&found));
            } else {
                println!(
                    "new activation codes for order {n} are on their way; the old ones no longer work"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
