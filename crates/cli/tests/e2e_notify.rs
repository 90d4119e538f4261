//! Notification transports, delivery state and resend (issue 5, point 7): email through a
//! real SMTP server (Python's aiosmtpd from `tests/.venv`, run by
//! `tests/clients/smtp_sink.py`), SMS through an HTTP gateway in this test that fails the
//! first time (retried with backoff) or refuses (given up at once), letters as PDFs in the
//! print folder (checked with `qpdf --check`), and `segl outbox list` / `segl outbox
//! resend` as support uses them. No number, address or text reaches the server's log.

#[macro_use]
mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

backend_tests!(
    email_goes_through_smtp_and_support_resends_it,
    sms_gateway_failures_are_retried_or_given_up,
    an_activation_letter_is_a_pdf_in_the_print_folder,
);

const PHONE: &str = "+4791234567";
const EMAIL: &str = "kari@example.no";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Adds a person with a password and the given phone and email.
fn add_person(segl: &Segl, nin: &str, phone: Option<&str>, email: Option<&str>) {
    let mut args = vec!["person", "add", "--nin", nin, "--name", "Kari Nordmann"];
    if let Some(p) = phone {
        args.extend(["--phone", p]);
    }
    if let Some(e) = email {
        args.extend(["--email", e]);
    }
    args.extend(["--password-stdin", "--json"]);
    segl.json_stdin(&args, Some(&format!("{PASSWORD}\n")));
}

/// `segl outbox list --nin NIN --json`.
fn messages(segl: &Segl, nin: &str) -> Vec<Value> {
    match segl.json(&["outbox", "list", "--nin", nin, "--json"]) {
        Value::Array(v) => v,
        other => panic!("`segl outbox list --json` is not an array: {other}"),
    }
}

/// Polls `segl outbox list` until a message of `channel` satisfies `done`; returns it.
fn wait_for(segl: &Segl, nin: &str, channel: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let msgs = messages(segl, nin);
        if let Some(m) = msgs.iter().find(|m| m["channel"] == channel && done(m)) {
            return m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {channel} message reached the expected state: {msgs:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asserts the server logged none of the person's data.
fn assert_no_personal_data(server: &Server, secrets: &[&str]) {
    let log = server.stderr();
    for s in secrets {
        assert!(!log.contains(s), "the server log holds {s}:\n{log}");
    }
}

// ---------------------------------------------------------------------------------------
// SMTP

/// aiosmtpd on a free loopback port, writing each message as JSON into a directory.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the sink, or returns `None` (skipped, or failing in CI) without tests/.venv.
    fn start() -> Option<SmtpSink> {
        let python = repo_root().join("tests/.venv/bin/python");
        if !python.exists() {
            skip(
                "the SMTP test (aiosmtpd)",
                "tests/.venv is missing (make it with: python3 -m venv tests/.venv && \
                 tests/.venv/bin/pip install -r tests/clients/requirements.txt)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(python)
            .arg(repo_root().join("tests/clients/smtp_sink.py"))
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start tests/clients/smtp_sink.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("smtp_sink listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "smtp_sink.py did not start (is aiosmtpd installed in tests/.venv?): {line:?}"
                )
            });
        Some(SmtpSink { child, port, dir })
    }

    /// The messages received so far, waiting up to 20 s for at least `n`.
    fn received(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort_by_key(|p| {
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<u32>().ok())
            });
            if files.len() >= n || Instant::now() > deadline {
                return files
                    .iter()
                    .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn email_goes_through_smtp_and_support_resends_it(backend: Backend) {
    let Some(sink) = SmtpSink::start() else {
        return;
    };
    let segl = Segl::new(backend);
    segl.write_config(&format!(
        "[notify]\nemail = \"smtp\"\nbackoff_base_secs = 1\n\n[notify.smtp]\nhost = \"127.0.0.1\"\n\
         port = {}\ntls = \"none\"\nfrom = \"segl <noreply@segl.test>\"\n",
        sink.port
    ));
    let server = Server::start(&segl, &[]);
    let nin = "01010050053";
    add_person(&segl, nin, Some(PHONE), Some(EMAIL));
    let done = segl.json(&[
        "person", "block", "--nin", nin, "--reason", "lost", "--json",
    ]);
    assert_eq!(done["notified"], json!(["sms", "email"]), "{done}");

    // The email reached the SMTP server, as a mail client would see it.
    let got = sink.received(1);
    assert_eq!(got.len(), 1, "{got:#?}");
    let mail = &got[0];
    assert_eq!(mail["rcpt_tos"], json!([EMAIL]), "{mail}");
    assert_eq!(mail["mail_from"], "noreply@segl.test", "{mail}");
    assert_eq!(mail["from"], "segl <noreply@segl.test>", "{mail}");
    assert_eq!(mail["to"], EMAIL, "{mail}");
    assert_eq!(mail["subject"], "Din eID er sperret", "{mail}");
    assert_eq!(mail["content_type"], "text/plain", "{mail}");
    let body = mail["body"].as_str().unwrap();
    assert!(body.contains("Your eID has been blocked"), "{body}");
    assert!(!body.contains(nin), "{body}");

    // Support sees it sent, with the server's id; the SMS went to the file transport.
    let email = wait_for(&segl, nin, "email", |m| m["state"] == "sent");
    assert_eq!(email["attempts"], 1, "{email}");
    assert_eq!(email["provider_id"], "sink-1", "{email}");
    assert_eq!(email["last_error"], Value::Null, "{email}");
    assert!(email["sent_at"].as_i64().is_some(), "{email}");
    assert_eq!(email["kind"], "eid.blocked", "{email}");
    assert!(email.get("body").is_none(), "no body in the list: {email}");
    let id = email["id"].as_str().unwrap().to_string();
    assert_eq!(
        mail["message_id"],
        format!("<{id}@segl.test>"),
        "traceable by id"
    );
    let sms = wait_for(&segl, nin, "sms", |m| m["state"] == "sent");
    assert_eq!(sms["recipient"], PHONE, "{sms}");
    assert_eq!(outbox(&segl, 1).len(), 1, "only the SMS is a file");

    // Text output masks the recipients.
    let out = segl.ok(&["outbox", "list", "--nin", nin]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("***@example.no") && text.contains("+*******567"),
        "{text}"
    );
    assert!(
        !text.contains(EMAIL) && !text.contains("91234567"),
        "{text}"
    );

    // Resend: a second copy goes out, audited with the agent.
    let entries = segl.audit().len();
    let again = segl.json(&["outbox", "resend", &id, "--by", "agent-3", "--json"]);
    let new_id = again["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(again["resent_from"], id.as_str(), "{again}");
    let got = sink.received(2);
    assert_eq!(got.len(), 2, "a second copy: {got:#?}");
    assert_eq!(got[1]["to"], EMAIL);
    assert_eq!(got[1]["subject"], "Din eID er sperret");
    assert_eq!(got[1]["body"], got[0]["body"]);
    assert_eq!(got[1]["message_id"], format!("<{new_id}@segl.test>"));
    let copy = wait_for(&segl, nin, "email", |m| {
        m["id"] == new_id.as_str() && m["state"] == "sent"
    });
    assert_eq!(copy["resent_from"], id.as_str(), "{copy}");
    assert_eq!(copy["provider_id"], "sink-2", "{copy}");
    assert_eq!(segl.audit_count("outbox.resent"), 1);
    let entry = segl
        .audit()
        .into_iter()
        .find(|e| e["event"] == "outbox.resent")
        .unwrap();
    assert_eq!(entry["data"]["by"], "agent-3", "{entry}");
    assert_eq!(entry["data"]["message"], id.as_str(), "{entry}");
    assert_eq!(segl.audit().len(), entries + 1);

    // Bad input: refused, nothing changes.
    let before = messages(&segl, nin).len();
    let unknown = "0190a0b0-0000-7000-8000-000000000001";
    let out = segl.cmd(&["outbox", "resend", unknown]);
    assert_input_error(&out, "resend of an unknown id", "no outbox message");
    let out = segl.cmd(&["outbox", "resend", "not-an-id"]);
    assert_input_error(&out, "resend of a malformed id", "not an outbox message id");
    let out = segl.cmd(&["outbox", "list", "--nin", "01010050054"]);
    assert_input_error(&out, "list with a bad number", "check digit");
    assert_eq!(messages(&segl, nin).len(), before, "nothing queued");
    assert_eq!(segl.audit_count("outbox.resent"), 1, "nothing audited");
    assert_eq!(sink.received(0).len(), 2, "nothing sent");
    assert_no_personal_data(&server, &[EMAIL, "91234567", "Your eID has been blocked"]);
    segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// HTTP SMS gateway

/// What the gateway received: the Authorization header and the JSON body.
type Received = (Option<String>, Value);

/// An SMS gateway answering from a script: each request takes the next (status, body);
/// once the script is used up, 200 with `{"id": "gw-default"}`.
#[derive(Clone, Default)]
struct Gateway {
    script: Arc<Mutex<VecDeque<(u16, Value)>>>,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Gateway {
    fn start(script: Vec<(u16, Value)>) -> (Gateway, String) {
        use axum::http::{HeaderMap, StatusCode};
        let gw = Gateway {
            script: Arc::new(Mutex::new(script.into())),
            ..Gateway::default()
        };
        let state = gw.clone();
        let app = axum::Router::new().route(
            "/send",
            axum::routing::post(
                move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                    let gw = state.clone();
                    async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        gw.requests.lock().unwrap().push((auth, body));
                        let (status, answer) = gw
                            .script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or((200, json!({"id": "gw-default"})));
                        (StatusCode::from_u16(status).unwrap(), axum::Json(answer))
                    }
                },
            ),
        );
        // On a thread and runtime of its own: the test thread blocks while it waits for
        // the CLI, and the gateway must answer meanwhile.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/send", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    axum::serve(listener, app).await
                })
        });
        (gw, url)
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }
}

async fn sms_gateway_failures_are_retried_or_given_up(backend: Backend) {
    let (gw, url) = Gateway::start(vec![
        (503, json!({"error": "busy"})),
        (200, json!({"id": "gw-42"})),
        (400, json!({"error": "bad number"})),
    ]);
    let segl = Segl::new(backend);
    segl.write_config(&format!(
        "[notify]\nsms = \"http\"\nbackoff_base_secs = 1\nmax_attempts = 3\n\n\
         [notify.sms_gateway]\nurl = \"{url}\"\nsender = \"seglID\"\n"
    ));
    // The credential comes from the environment, as the operator guide says.
    let server = Server::start_with_env(
        &segl,
        &[],
        &[(
            "SEGL_NOTIFY__SMS_GATEWAY__AUTHORIZATION",
            "Bearer gateway-token",
        )],
    );
    let nin = "01010050053";
    add_person(&segl, nin, Some(PHONE), None);
    segl.json(&[
        "person", "block", "--nin", nin, "--reason", "lost", "--json",
    ]);

    // 503, then 200: sent at the second attempt, with the gateway's id.
    let sms = wait_for(&segl, nin, "sms", |m| m["state"] != "queued");
    assert_eq!(sms["state"], "sent", "{sms}");
    assert_eq!(sms["attempts"], 2, "{sms}");
    assert_eq!(sms["provider_id"], "gw-42", "{sms}");
    assert_eq!(sms["last_error"], Value::Null, "{sms}");
    let reqs = gw.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for (auth, body) in &reqs {
        assert_eq!(auth.as_deref(), Some("Bearer gateway-token"));
        assert_eq!(body["to"], PHONE, "{body}");
        assert_eq!(body["from"], "seglID", "{body}");
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .contains("Your eID has been blocked"),
            "{body}"
        );
    }

    // 400: given up at once, with a short error support can read.
    let nin2 = "01010050134";
    add_person(&segl, nin2, Some("+4798765432"), None);
    segl.json(&[
        "person", "block", "--nin", nin2, "--reason", "stolen", "--json",
    ]);
    let sms = wait_for(&segl, nin2, "sms", |m| m["state"] != "queued");
    assert_eq!(sms["state"], "failed", "{sms}");
    assert_eq!(sms["attempts"], 1, "{sms}");
    assert_eq!(sms["last_error"], "sms gateway: refused, HTTP 400", "{sms}");
    assert_eq!(sms["sent_at"], Value::Null, "{sms}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(gw.requests().len(), 3, "no retry after a 400");
    assert_eq!(
        messages(&segl, nin2)[0]["attempts"],
        1,
        "no retry after a 400"
    );
    let out = segl.ok(&["outbox", "list", "--nin", nin2]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("failed") && text.contains("HTTP 400") && text.contains("+*******432"),
        "{text}"
    );
    assert_no_personal_data(
        &server,
        &[
            "91234567",
            "98765432",
            "Your eID has been blocked",
            "gateway-token",
        ],
    );

    // A failed message can be resent; the copy goes out.
    let failed_id = sms["id"].as_str().unwrap().to_string();
    let again = segl.json(&["outbox", "resend", &failed_id, "--json"]);
    let copy = wait_for(&segl, nin2, "sms", |m| {
        m["id"] == again["id"] && m["state"] != "queued"
    });
    assert_eq!(copy["state"], "sent", "{copy}");
    assert_eq!(copy["provider_id"], "gw-default", "{copy}");
    assert_eq!(gw.requests().len(), 4);
    segl.audit_ok();
}

// ---------------------------------------------------------------------------------------
// Letters

async fn an_activation_letter_is_a_pdf_in_the_print_folder(backend: Backend) {
    let segl = Segl::new(backend);
    let _server = Server::start(&segl, &[]);
    let nin = "01010050215";
    add_person(&segl, nin, Some(PHONE), None);

    // A bad address is refused before anything happens.
    let out = segl.cmd(&[
        "person",
        "activation-code",
        "--nin",
        nin,
        "--letter-to",
        "Oslo",
    ]);
    assert_input_error(&out, "one-line address", "--letter-to");
    assert!(messages(&segl, nin).is_empty(), "nothing queued");

    let out = segl.ok(&[
        "person",
        "activation-code",
        "--nin",
        nin,
        "--letter-to",
        "Kari Nordmann, Storgata 1, 0150 Oslo",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v.get("activation_code").is_none(),
        "the code goes by letter only: {v}"
    );
    let id = v["letter"].as_str().expect("the letter's id").to_string();

    let letter = wait_for(&segl, nin, "letter", |m| m["state"] == "sent");
    assert_eq!(letter["id"], id.as_str());
    assert_eq!(letter["kind"], "app.activation_letter");
    assert_eq!(letter["recipient"], "Kari Nordmann\nStorgata 1\n0150 Oslo");
    let pdf = segl.data_dir().join("print").join(format!("{id}.pdf"));
    let bytes = std::fs::read(&pdf).expect("the letter's PDF");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pdf).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "owner-only");
    }
    assert!(bytes.starts_with(b"%PDF-1.7"));
    // Text is written as hex strings in WinAnsiEncoding.
    let hex = |s: &str| data_encoding::HEXUPPER.encode(s.as_bytes());
    let raw = String::from_utf8_lossy(&bytes).to_uppercase();
    for needle in ["0150 Oslo", "Storgata 1", &format!("Referanse: {id}")] {
        assert!(raw.contains(&hex(needle)), "{needle} in the PDF");
    }
    let leftovers: Vec<_> = std::fs::read_dir(pdf.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left");

    match Command::new("qpdf").arg("--check").arg(&pdf).output() {
        Ok(out) => assert!(
            out.status.success(),
            "qpdf --check: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => skip("qpdf --check of the letter", "qpdf is not installed"),
    }
    let out = segl.ok(&["outbox", "list", "--nin", nin]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("… 0150 Oslo") && !text.contains("Storgata"),
        "{text}"
    );
    segl.audit_ok();
}
