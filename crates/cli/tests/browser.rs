//! A person logs in on the demo in a real browser: `tests/browser/demo_login.mjs` drives
//! Debian's Chromium with playwright-core against `segl serve --demo`. `.ci/run` installs
//! Chromium and `tests/browser/node_modules`; outside CI a missing one is skipped with the
//! reason, in CI it fails.
//!
//! `tests/browser/app_login.mjs` does the same with the app (issue 3): the person chooses
//! the app on the login page, the reference app (`segl app approve` / `segl app deny`, run
//! here when the page says it waits) answers, and the page moves on by itself.

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use openidconnect::Nonce;
use serde_json::{Value, json};

#[test]
fn demo_login_in_chromium() {
    let Some(root) = browser_prerequisites("the browser test") else {
        return;
    };
    // The demo on each backend (PostgreSQL where configured): `--demo` seeds either.
    for backend in backends() {
        let segl = Segl::new(backend);
        let server = Server::start(&segl, &["--demo"]);
        let shots = screenshot_dir();
        let out = Command::new("node")
            .arg(root.join("tests/browser/demo_login.mjs"))
            .env("SEGL_BASE_URL", &server.base_url)
            .env("SCREENSHOT_DIR", shots.path())
            .env("CHROMIUM", CHROMIUM)
            .current_dir(&root)
            .output()
            .expect("cannot run node");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !(out.status.success() && stdout.lines().any(|l| l.starts_with("browser: OK"))) {
            // Keep the screenshot for whoever reads the failure.
            let kept = shots.keep();
            panic!(
                "the demo login in Chromium failed on {backend:?} ({}); screenshots in {}\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver stderr:\n{}",
                out.status,
                kept.display(),
                server.stderr()
            );
        }
        print!("{stdout}");
        segl.audit_ok();
    }
}

/// The person who logs in with the app: a Norwegian mobile number, as the app requires
/// (the demo's own people have none).
const APP_NAME: &str = "Nora Appelsen";
/// How long the whole script may take (two logins; each waits at most 30 s for the app).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

#[test]
fn app_login_in_chromium() {
    let Some(root) = browser_prerequisites("the browser test") else {
        return;
    };
    let segl = Segl::new(Backend::Sqlite);
    segl.write_config("[policy.app]\nsecurity_period_secs = 1\n");
    let server = Server::start(&segl, &["--demo"]);

    // The person and their app, activated as in e2e_app_login.rs.
    let person = add_app_person(&segl, APP_NIN, APP_NAME);
    let sub = person["sub"]
        .as_str()
        .unwrap_or_else(|| panic!("person add: no sub in {person}"))
        .to_string();
    let code = activation_code(&segl, APP_NIN);
    // The security period (1 s here) must pass before the code can be used.
    std::thread::sleep(Duration::from_millis(2100));
    let app_dir = tempfile::tempdir().expect("temp dir");
    let vault_path = app_dir.path().join("vault.json");
    let vault = vault_path.to_str().unwrap();
    let out = app_activate(&segl, &server, &code, None, &vault_path);
    assert_success(&out, &["app", "activate"]);

    let shots = screenshot_dir();
    let started = Instant::now();
    let mut node = NodeScript::spawn(
        &root,
        "tests/browser/app_login.mjs",
        &[
            ("SEGL_BASE_URL", server.base_url.as_ref()),
            ("SEGL_APP_NIN", APP_NIN.as_ref()),
            ("SEGL_APP_NAME", APP_NAME.as_ref()),
            ("SCREENSHOT_DIR", shots.path().as_os_str()),
            ("CHROMIUM", CHROMIUM.as_ref()),
        ],
    );

    // Read the script's lines; answer in the app whenever the page says it waits.
    let mut stdout = String::new();
    let mut answers: Vec<String> = Vec::new();
    let mut app_log = String::new();
    let mut id_token = None;
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
        if let Some(rest) = line.strip_prefix("VERIFICATION ") {
            let (answer, shown) = rest.split_once(' ').unwrap_or((rest, ""));
            match app_answer(&segl, vault, answer, shown) {
                Ok(v) => {
                    app_log.push_str(&format!("segl app {answer}: {v}\n"));
                    answers.push(answer.to_string());
                }
                Err(e) => {
                    problem = Some(e);
                    break;
                }
            }
        } else if let Some(t) = line.strip_prefix("ID_TOKEN ") {
            id_token = Some(t.to_string());
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
            "login with the app in Chromium failed ({}; node {status}); screenshots in {}\n\
             the app answered: {answers:?}\n{app_log}\
             stdout:\n{stdout}\nstderr:\n{}\nserver stderr:\n{}",
            problem.as_deref().unwrap_or("the script failed"),
            kept.display(),
            node.stderr.lock().unwrap(),
            server.stderr()
        );
    }
    assert_eq!(answers, ["approve", "deny"], "stdout:\n{stdout}");

    // The ID token the demo relying party received verifies on its own, too: signature
    // against the JWKS, issuer, audience, expiry, and its nonce.
    let id_token = id_token.unwrap_or_else(|| panic!("the script printed no ID_TOKEN:\n{stdout}"));
    let demo = Rp {
        client_id: "segl-demo".into(),
        client_secret: None,
        redirect_uri: server.url("/demo/callback"),
    };
    let (_, client) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(discover(&server, &demo));
    let nonce = jwt_parts(&id_token).1["nonce"]
        .as_str()
        .unwrap_or_else(|| panic!("no nonce in the ID token"))
        .to_string();
    let claims = verified_claims(&client, &id_token, &Nonce::new(nonce));
    assert_eq!(claims["sub"], sub.as_str(), "{claims}");
    assert_eq!(claims["name"], APP_NAME, "{claims}");
    assert_eq!(claims["amr"], json!(["swk", "pin", "mfa"]), "{claims}");
    assert_eq!(
        claims["acr"], "http://eidas.europa.eu/LoA/substantial",
        "{claims}"
    );

    // The server recorded both answers and one login, by the app.
    let audit = segl.audit();
    let count = |event: &str| audit.iter().filter(|e| e["event"] == event).count();
    assert_eq!(count("app.approved"), 1, "{audit:?}");
    assert_eq!(count("app.denied"), 1, "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|e| e["event"] == "login.success"
                && e["data"]["amr"] == json!(["swk", "pin", "mfa"])),
        "{audit:?}"
    );
    segl.audit_ok();
    print!("{stdout}");
    println!(
        "app login in Chromium: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `segl app approve|deny --wait 10 --vault V --json` with the PIN: checks the app saw the
/// request the page shows (same verification code, the demo as the service) and that the
/// server took the answer.
fn app_answer(segl: &Segl, vault: &str, answer: &str, shown: &str) -> Result<Value, String> {
    let expected = match answer {
        "approve" => "approved",
        "deny" => "denied",
        other => return Err(format!("the script asked for an unknown answer {other:?}")),
    };
    let args = ["app", answer, "--wait", "10", "--vault", vault, "--json"];
    let out = segl.cmd_stdin(&args, Some(&format!("{APP_PIN}\n")));
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`segl {}` failed ({}): {text}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("`segl app {answer}` printed no JSON ({e}): {text}"))?;
    if v["request"]["verification_code"] != shown {
        return Err(format!(
            "the app shows verification code {} but the page shows {shown:?}: {v}",
            v["request"]["verification_code"]
        ));
    }
    if v["request"]["rp"] != "segl demo" {
        return Err(format!("the app names another service: {v}"));
    }
    if v["result"]["state"] != expected {
        return Err(format!(
            "the server did not take the answer as {expected}: {v}"
        ));
    }
    Ok(v)
}
