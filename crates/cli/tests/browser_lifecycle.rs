//! An eID's life in a real browser, with an accessibility check of every page (issue: "In
//! headless Chromium: order, My page, block. An accessibility check of these pages with
//! axe-core finds no serious or critical violation"). `tests/browser/lifecycle.mjs` drives
//! Debian's Chromium with playwright-core against `segl serve` (SQLite): a person orders an
//! eID on `/order` (once with a wrong MRZ check digit), activates it on `/order/activate`
//! with the codes this test reads from the outbox, orders one for their child naming
//! themself as guardian, logs in to `/my` with the code device the operator then gives them
//! and the password, approves the child's order on `/order/guardian`, and blocks the eID on
//! `/block` with the code device alone. axe-core runs on each page, in bokmål and in
//! English.
//!
//! Afterwards the CLI shows what the browser did: the order activated, the person blocked
//! by `self-service` for the reason chosen, the certificate revoked. Prerequisites as in
//! `browser.rs`: skipped outside CI without Chromium or `tests/browser/node_modules`.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// How long the whole script may take (four scenarios, about twenty axe runs).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
/// How many one-time codes of the code device the script gets (it needs two).
const CODES: usize = 6;

const NAME: &str = "Kari Nordmann";
const PHONE: &str = "+47 412 34 567";
const EMAIL: &str = "kari@example.no";
/// Kari's daughter, whose order Kari approves as guardian.
const MINOR_NAME: &str = "Eli Nordmann";
const MINOR_EMAIL: &str = "eli@example.no";

/// The MRZ with the birth date's check digit changed: an ordinary typing error.
fn wrong_birth_check_digit(mrz: &str) -> String {
    let (line1, line2) = mrz.split_once('\n').expect("two MRZ lines");
    // TD3 line 2: document number (9) and its check digit, nationality (3), birth date (6)
    // and its check digit at index 19.
    let mut chars: Vec<char> = line2.chars().collect();
    let d = chars[19].to_digit(10).expect("a check digit");
    chars[19] = char::from_digit((d + 1) % 10, 10).unwrap();
    format!("{line1}\n{}", chars.into_iter().collect::<String>())
}

/// What the test did for the script, for the failure message.
#[derive(Default)]
struct Log {
    order_number: Option<String>,
    minor_number: Option<String>,
    notes: String,
}

/// Answers one of the script's questions (see the protocol in `lifecycle.mjs`).
fn answer(segl: &Segl, nin: &str, before: usize, line: &str, log: &mut Log) -> Option<String> {
    if let Some(number) = line.strip_prefix("MINOR_ORDERED ") {
        log.minor_number = Some(number.trim().to_string());
        return None;
    }
    if let Some(number) = line.strip_prefix("ORDERED ") {
        log.order_number = Some(number.trim().to_string());
        let (sms, email) = sms_email_codes(segl, before);
        log.notes.push_str("sent the SMS and email codes\n");
        return Some(format!("CODES {sms} {email}"));
    }
    if line == "ACTIVATED" {
        // The operator gives the new eID holder a code device, and the eID its certificate
        // if activation did not issue one.
        let assigned = segl.assign(SERIAL, nin);
        log.notes
            .push_str(&format!("segl token assign {SERIAL}: {assigned}\n"));
        let valid = certs_of(segl, nin).iter().any(|c| c["status"] == "valid");
        if !valid {
            let issued = segl.json(&["cert", "issue", "--nin", nin, "--json"]);
            log.notes
                .push_str(&format!("segl cert issue: serial {}\n", issued["serial"]));
        }
        let mut device = Hotp::new(SERIAL);
        let codes: Vec<String> = (0..CODES).map(|_| device.next_code()).collect();
        return Some(format!("DEVICE {SERIAL} {}", codes.join(" ")));
    }
    None
}

fn certs_of(segl: &Segl, nin: &str) -> Vec<Value> {
    match segl.json(&["cert", "list", "--nin", nin, "--json"]) {
        Value::Array(v) => v,
        other => panic!("`segl cert list --json` is not an array: {other}"),
    }
}

#[test]
fn order_my_page_and_block_in_chromium_pass_axe() {
    let Some(root) = browser_prerequisites("the browser lifecycle test") else {
        return;
    };
    let segl = Segl::new(Backend::Sqlite);
    let server = Server::start(&segl, &[]);
    let imported = segl.import_tokens("hotp-plain.pskcxml");
    assert_eq!(imported["imported"], 3, "token import: {imported}");

    let nin = nin_born(1990, 3, 14, 0);
    let mrz = passport("NORDMANN", "KARI", "900314", "341231", &nin);
    let bad_mrz = wrong_birth_check_digit(&mrz);
    let questions = questions().to_string();
    let y = this_year();
    let minor_nin = nin_born(y - 15, 2, 2, 3);
    let minor_birth = format!("{:02}0202", (y - 15) % 100);
    let minor_mrz = passport("NORDMANN", "ELI", &minor_birth, "341231", &minor_nin);
    let before = outbox(&segl, 0).len();

    let shots = screenshot_dir();
    let started = Instant::now();
    let mut node = NodeScript::spawn_talking(
        &root,
        "tests/browser/lifecycle.mjs",
        &[
            ("SEGL_BASE_URL", server.base_url.as_ref()),
            ("SEGL_NIN", nin.as_ref()),
            ("SEGL_NAME", NAME.as_ref()),
            ("SEGL_PHONE", PHONE.as_ref()),
            ("SEGL_EMAIL", EMAIL.as_ref()),
            ("SEGL_MRZ", mrz.as_ref()),
            ("SEGL_BAD_MRZ", bad_mrz.as_ref()),
            ("SEGL_PASSWORD", NEW_PASSWORD.as_ref()),
            ("SEGL_QUESTIONS", questions.as_ref()),
            ("SEGL_MINOR_NIN", minor_nin.as_ref()),
            ("SEGL_MINOR_NAME", MINOR_NAME.as_ref()),
            ("SEGL_MINOR_EMAIL", MINOR_EMAIL.as_ref()),
            ("SEGL_MINOR_MRZ", minor_mrz.as_ref()),
            ("SCREENSHOT_DIR", shots.path().as_os_str()),
            ("CHROMIUM", CHROMIUM.as_ref()),
        ],
    );

    // Relay the script's lines; answer its questions.
    let mut stdout = String::new();
    let mut log = Log::default();
    let mut problem: Option<String> = None;
    loop {
        let left = SCRIPT_TIMEOUT.saturating_sub(started.elapsed());
        let line = match node.lines.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                problem = Some(format!(
                    "the script did not finish within {SCRIPT_TIMEOUT:?}"
                ));
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        stdout.push_str(&line);
        stdout.push('\n');
        // A failed answer (e.g. no codes in the outbox) panics here; tell the script first.
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            answer(&segl, &nin, before, &line, &mut log)
        }));
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into());
                let _ = node.send_line(&format!("ERROR {}", msg.replace('\n', " ")));
                problem = Some(format!("answering {line:?}: {msg}"));
                break;
            }
        };
        if let Some(reply) = reply
            && let Err(e) = node.send_line(&reply)
        {
            problem = Some(e);
            break;
        }
    }
    if problem.is_some() {
        let _ = node.child.kill();
    }
    let status = node.child.wait().expect("wait for node");
    // The reader thread may still hold the last lines.
    while let Ok(line) = node.lines.recv_timeout(Duration::from_millis(200)) {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let ok = problem.is_none()
        && status.success()
        && stdout.lines().any(|l| l.starts_with("browser: OK"));
    if !ok {
        let kept = shots.keep();
        panic!(
            "the eID's life in Chromium failed ({}; node {status}); screenshots in {}\n\
             the test did: {}\nstdout:\n{stdout}\nstderr:\n{}\nserver stderr:\n{}",
            problem.as_deref().unwrap_or("the script failed"),
            kept.display(),
            log.notes,
            node.stderr.lock().unwrap(),
            server.stderr()
        );
    }
    print!("{stdout}");

    print!("{}", log.notes);

    // The order the browser sent was approved and activated; the child's, approved by the
    // guardian; the refused forms stored nothing.
    let number = log
        .order_number
        .unwrap_or_else(|| panic!("the script never ordered:\n{stdout}"));
    let minor_number = log
        .minor_number
        .unwrap_or_else(|| panic!("the script never ordered for the child:\n{stdout}"));
    let orders = segl.json(&["order", "list", "--json"]);
    let list = orders.as_array().expect("order list is an array");
    assert_eq!(list.len(), 2, "{orders}");
    let order = |n: &str| {
        list.iter()
            .find(|o| o["number"] == n)
            .unwrap_or_else(|| panic!("no order {n} in {orders}"))
    };
    assert_eq!(order(&number)["state"], "activated", "{orders}");
    assert_eq!(order(&number)["name"], NAME, "{orders}");
    assert_eq!(order(&minor_number)["state"], "approved", "{orders}");
    assert_eq!(order(&minor_number)["name"], MINOR_NAME, "{orders}");
    assert_eq!(segl.audit_count("order.activated"), 1);
    assert_eq!(segl.audit_count("order.guardian_approved"), 1);

    // The block: by the person, for the reason they chose, and the certificate revoked.
    let audit = segl.audit();
    let blocked: Vec<&Value> = audit
        .iter()
        .filter(|e| e["event"] == "person.blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{audit:?}");
    assert_eq!(blocked[0]["data"]["by"], "self-service", "{}", blocked[0]);
    assert_eq!(blocked[0]["data"]["reason"], "lost", "{}", blocked[0]);
    assert_eq!(
        blocked[0]["data"]["devices"],
        json!([SERIAL]),
        "{}",
        blocked[0]
    );
    let certs = certs_of(&segl, &nin);
    assert!(!certs.is_empty(), "the eID had a certificate");
    assert!(
        certs.iter().all(|c| c["status"] == "revoked"),
        "every certificate revoked: {certs:?}"
    );
    let token = segl.token(SERIAL);
    assert_eq!(token["state"], "blocked", "{token}");
    segl.audit_ok();
    println!(
        "the eID's life in Chromium: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
