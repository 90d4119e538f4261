//! Operating segl, end to end on each backend: health and metrics, configuration (file,
//! environment, validation), the audit chain against tampering, and the token-signing
//! keys on disk, in the JWKS and across a rotation.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, IssuerUrl, Nonce, TokenResponse};
use serde_json::{Value, json};

backend_tests!(
    healthz_and_metrics_count_logins,
    configuration_is_validated_and_shows_its_sources,
    audit_verify_finds_a_tampered_entry,
    key_files_jwks_and_rotation,
);

// ---------------------------------------------------------------------------------------
// Helpers of this file
// ---------------------------------------------------------------------------------------

/// Reads a reqwest response whole.
async fn get(url: &str) -> Resp {
    Resp::fetch(no_redirect_client().get(url), format!("GET {url}")).await
}

/// Runs a command, killing it (and failing) if it runs longer than `limit`.
fn run_with_limit(mut c: Command, limit: Duration, what: &str) -> Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {limit:?} (it should have refused to start); stderr:\n{}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// File names in a directory, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The `--database-url` of an installation, if it has one (PostgreSQL).
fn database_url(segl: &Segl) -> Option<String> {
    let args = segl.location_args();
    args.iter()
        .position(|a| a == "--database-url")
        .map(|i| args[i + 1].to_string_lossy().into_owned())
}

// ---------------------------------------------------------------------------------------
// 7. Health and metrics
// ---------------------------------------------------------------------------------------

/// `/healthz` is `{"status":"ok"}`; `/metrics` counts a login once (and a single sign-on
/// is no login), tokens issued and wrong codes.
async fn healthz_and_metrics_count_logins(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let issuer = fx.server.issuer();
    let r = get(&fx.server.url("/healthz")).await;
    r.expect_status(200);
    assert!(
        r.content_type().starts_with("application/json"),
        "healthz content type {:?}",
        r.content_type()
    );
    assert_eq!(r.json(), json!({"status": "ok"}));

    let m0 = metrics(&fx.server).await;
    let logins0 = metric(&m0, "segl_logins_succeeded_total");
    let tokens0 = metric(&m0, "segl_tokens_issued_total");
    let otp0 = metric(&m0, "segl_otp_failures_total");
    for name in ["segl_logins_failed_total", "segl_refresh_token_reuse_total"] {
        metric(&m0, name);
    }
    assert_eq!(logins0, 0, "no login yet:\n{m0}");

    // A wrong code first (counted as an OTP failure, not as a login), then the login.
    let (_, client) = discover(&fx.server, &fx.rp).await;
    let start = authorize(&client, &[], &[]);
    let mut b = fx.browser();
    let flow = b.start_flow(start.url.as_str()).await;
    let flow = b.identify(&flow, NIN).await;
    let r = b
        .step(&flow, "otp", json!({"otp": fx.device.wrong_code()}))
        .await;
    assert_problem(&r, 401, "wrong_otp");
    let m = metrics(&fx.server).await;
    assert_eq!(metric(&m, "segl_otp_failures_total"), otp0 + 1, "{m}");
    assert_eq!(metric(&m, "segl_logins_succeeded_total"), logins0, "{m}");
    let flow = b.otp_ok(&flow, &fx.device.next_code()).await;
    let done = b.password_ok(&flow, PASSWORD).await;
    let m1 = metrics(&fx.server).await;
    assert_eq!(
        metric(&m1, "segl_logins_succeeded_total"),
        logins0 + 1,
        "one login counts once:\n{m1}"
    );
    assert_eq!(metric(&m1, "segl_tokens_issued_total"), tokens0, "{m1}");

    let code = code_from(
        done["redirect_to"].as_str().unwrap(),
        &fx.rp,
        &start,
        &issuer,
    );
    exchange(&client, code, start.verifier).await;
    let m2 = metrics(&fx.server).await;
    assert_eq!(metric(&m2, "segl_tokens_issued_total"), tokens0 + 1, "{m2}");

    // Single sign-on answers without a login.
    let start = authorize(&client, &[], &[]);
    let r = b.get(start.url.as_str()).await;
    r.expect_status(303);
    assert!(r.location().unwrap().starts_with(REDIRECT_URI));
    let m3 = metrics(&fx.server).await;
    assert_eq!(
        metric(&m3, "segl_logins_succeeded_total"),
        logins0 + 1,
        "single sign-on is no login:\n{m3}"
    );
    assert_eq!(metric(&m3, "segl_sso_authorizations_total"), 1, "{m3}");
}

// ---------------------------------------------------------------------------------------
// 8. Configuration
// ---------------------------------------------------------------------------------------

/// Unknown keys in `segl.toml` and invalid values from the environment stop every command
/// (exit 2, the key named, nothing written); `segl config show --json` tells where each
/// value came from, and the server uses the same precedence.
async fn configuration_is_validated_and_shows_its_sources(backend: Backend) {
    let segl = Segl::new(backend);
    let dir = segl.data_dir().to_path_buf();

    for (toml, key) in [
        ("lissen = \"127.0.0.1:1\"\n", "lissen"),
        ("[policy]\nflow_ttl = 5\n", "flow_ttl"),
        ("[policy.password]\nmin_len = 12\n", "min_len"),
        ("[argon2]\nmemory = 8\n", "memory"),
    ] {
        segl.write_config(toml);
        let out = segl.cmd(&["person", "show", "--nin", NIN]);
        assert_input_error(&out, &format!("person show with {toml:?}"), key);
    }
    segl.write_config("lissen = \"127.0.0.1:1\"\n");
    let out = segl.cmd_stdin(
        &[
            "person",
            "add",
            "--nin",
            NIN,
            "--name",
            NAME,
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_input_error(&out, "person add with an unknown key", "lissen");
    let out = run_with_limit(
        segl.command(&["serve", "--listen", "127.0.0.1:0"]),
        Duration::from_secs(60),
        "serve with an unknown key",
    );
    assert_input_error(&out, "serve with an unknown key", "lissen");
    std::fs::remove_file(dir.join("segl.toml")).unwrap();

    // An invalid value from the environment.
    let bad_env = |args: &[&str]| {
        let mut c = segl.command(args);
        c.env("SEGL_POLICY__FLOW_TTL_SECS", "0");
        c
    };
    let mut c = bad_env(&["person", "show", "--nin", NIN]);
    c.stdin(Stdio::null());
    let out = c.output().unwrap();
    assert_input_error(&out, "SEGL_POLICY__FLOW_TTL_SECS=0", "policy.flow_ttl_secs");
    let out = run_with_limit(
        bad_env(&["serve", "--listen", "127.0.0.1:0"]),
        Duration::from_secs(60),
        "serve with SEGL_POLICY__FLOW_TTL_SECS=0",
    );
    assert_input_error(
        &out,
        "serve with SEGL_POLICY__FLOW_TTL_SECS=0",
        "policy.flow_ttl_secs",
    );
    assert_eq!(
        names_in(&dir),
        Vec::<String>::new(),
        "refused commands write nothing to the data directory"
    );
    // And the refused `person add` added nobody.
    let out = segl.cmd(&["person", "show", "--nin", NIN]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no person"),
        "{out:?}"
    );

    // Where each value came from.
    segl.write_config("[policy]\nflow_ttl_secs = 100\nsession_ttl_secs = 100\npar_ttl_secs = 30\n");
    let show = |env: &[(&str, &str)]| -> BTreeMap<String, (Value, String)> {
        let mut c = segl.command(&["config", "show", "--json"]);
        c.envs(env.iter().copied()).stdin(Stdio::null());
        let out = c.output().unwrap();
        assert_success(&out, &["config", "show", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "config show --json printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        v.as_array()
            .unwrap_or_else(|| panic!("config show --json is no array: {v}"))
            .iter()
            .map(|e| {
                (
                    e["key"].as_str().unwrap().to_string(),
                    (
                        e["value"].clone(),
                        e["source"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect()
    };
    let entry = |m: &BTreeMap<String, (Value, String)>, k: &str| -> (Value, String) {
        m.get(k)
            .unwrap_or_else(|| panic!("config show has no {k}: {m:?}"))
            .clone()
    };
    let m = show(&[
        ("SEGL_POLICY__FLOW_TTL_SECS", "300"),
        ("SEGL_MAX_BODY_BYTES", "2048"),
        ("SEGL_DATABASE_MAX_CONNECTIONS", "3"),
        // A flag of `segl app`, not a configuration key: it must not be refused as one.
        ("SEGL_APP_VAULT", "/nonexistent/vault.json"),
    ]);
    assert_eq!(
        entry(&m, "policy.flow_ttl_secs"),
        (json!(300), "env".into())
    );
    assert_eq!(entry(&m, "max_body_bytes"), (json!(2048), "env".into()));
    assert_eq!(
        entry(&m, "database_max_connections"),
        (json!(3), "env".into())
    );
    assert!(!m.contains_key("app_vault"), "{m:?}");
    assert_eq!(
        entry(&m, "policy.session_ttl_secs"),
        (json!(100), "file".into())
    );
    assert_eq!(entry(&m, "policy.par_ttl_secs"), (json!(30), "file".into()));
    assert_eq!(
        entry(&m, "policy.auth_code_ttl_secs"),
        (json!(60), "default".into())
    );
    assert_eq!(
        entry(&m, "policy.password.min_length"),
        (json!(10), "default".into())
    );
    // The app's table, nested two deep, with an enum and a flag from the environment.
    let app = show(&[
        ("SEGL_POLICY__APP__VERIFICATION_CODE", "digits"),
        ("SEGL_POLICY__APP__REQUIRE_MOBILE", "false"),
    ]);
    assert_eq!(
        entry(&app, "policy.app.verification_code"),
        (json!("digits"), "env".into())
    );
    assert_eq!(
        entry(&app, "policy.app.require_mobile"),
        (json!(false), "env".into())
    );
    assert_eq!(
        entry(&app, "policy.app.security_period_secs"),
        (json!(3600), "default".into())
    );
    let mut c = segl.command(&["config", "show"]);
    c.env("SEGL_POLICY__APP__REQUEST_TTL_SECS", "0")
        .stdin(Stdio::null());
    assert_input_error(
        &c.output().unwrap(),
        "SEGL_POLICY__APP__REQUEST_TTL_SECS=0",
        "policy.app.request_ttl_secs",
    );
    match backend {
        Backend::Sqlite => assert_eq!(entry(&m, "database_url"), (Value::Null, "default".into())),
        Backend::Postgres => {
            assert_eq!(
                entry(&m, "database_url"),
                (json!(database_url(&segl).unwrap()), "flag".into())
            );
        }
    }
    let m = show(&[]);
    assert_eq!(
        entry(&m, "policy.flow_ttl_secs"),
        (json!(100), "file".into())
    );
    assert_eq!(
        entry(&m, "max_body_bytes"),
        (json!(65536), "default".into())
    );

    // The server follows the same precedence: PAR lifetimes from the file, then from the
    // environment.
    let rp = segl.add_rp("Config client", REDIRECT_URI, &[]);
    let secret = rp.client_secret.clone().unwrap();
    let par_expires_in = |server: Server| {
        let rp = rp.clone();
        let secret = secret.clone();
        async move {
            let (challenge, _) = openidconnect::PkceCodeChallenge::new_random_sha256();
            let r = no_redirect_client()
                .post(server.url("/oauth2/par"))
                .basic_auth(&rp.client_id, Some(&secret))
                .form(&[
                    ("response_type", "code"),
                    ("redirect_uri", REDIRECT_URI),
                    ("scope", "openid"),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201);
            let v: Value = r.json().await.unwrap();
            v["expires_in"].clone()
        }
    };
    assert_eq!(par_expires_in(Server::start(&segl, &[])).await, json!(30));
    let server = Server::start_with_env(&segl, &[], &[("SEGL_POLICY__PAR_TTL_SECS", "45")]);
    assert_eq!(par_expires_in(server).await, json!(45));
}

// ---------------------------------------------------------------------------------------
// 9. Audit chain
// ---------------------------------------------------------------------------------------

/// `segl audit verify --json`, any exit code: (exit code, report).
fn audit_verify(segl: &Segl) -> (Option<i32>, Value) {
    let out = segl.cmd(&["audit", "verify", "--json"]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "audit verify --json printed no JSON ({e}): {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// After a login the chain verifies; changing one entry's data in the database makes
/// `segl audit verify` exit 1 naming that entry; restored, it verifies again; cutting
/// the last entry off is found too.
async fn audit_verify_finds_a_tampered_entry(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let rp = fx.rp.clone();
    let server_url = fx.server.issuer();
    let (redirect_to, start) = {
        let (_, client) = discover(&fx.server, &rp).await;
        let start = authorize(&client, &[], &[]);
        let mut b = fx.browser();
        let r = b
            .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
            .await;
        (r, start)
    };
    let (_, client) = discover(&fx.server, &rp).await;
    let code = code_from(&redirect_to, &rp, &start, &server_url);
    exchange(&client, code, start.verifier).await;

    let (code, v) = audit_verify(&fx.segl);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true, "{v}");
    let entries = v["entries"].as_i64().expect("entries");
    assert!(entries > 0, "{v}");
    assert!(v["first_broken"].is_null(), "{v}");
    let login = fx
        .segl
        .audit()
        .into_iter()
        .find(|e| e["event"] == "login.success")
        .expect("the login is audited");
    let seq = login["seq"].as_i64().expect("seq");
    assert!(
        seq < entries,
        "the login is not the last entry here: {login}"
    );

    // Stop the server so nothing else writes, then tamper.
    let Fixture { segl, server, .. } = fx;
    drop(server);
    let mut db = segl.db_connect().await;
    let original: String = sqlx::query_scalar("SELECT data FROM audit_log WHERE seq = $1")
        .bind(seq)
        .fetch_one(&mut db)
        .await
        .expect("the login's audit row");
    let forged = original.replace("\"otp\"", "\"sms\"");
    assert_ne!(forged, original, "the row names otp: {original}");
    let set = |data: String| {
        sqlx::query("UPDATE audit_log SET data = $1 WHERE seq = $2")
            .bind(data)
            .bind(seq)
    };
    let n = set(forged).execute(&mut db).await.unwrap().rows_affected();
    assert_eq!(n, 1);

    let (code, v) = audit_verify(&segl);
    assert_eq!(code, Some(1), "a broken chain exits 1: {v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_broken"], seq, "names the tampered entry: {v}");
    assert_eq!(v["entries"], seq - 1, "entries before the broken one: {v}");
    let out = segl.cmd(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("entry {seq}")),
        "the text output names entry {seq}: {text}"
    );

    // Restored: intact again.
    set(original).execute(&mut db).await.unwrap();
    let (code, v) = audit_verify(&segl);
    assert_eq!(
        (code, &v["ok"], &v["entries"]),
        (Some(0), &json!(true), &json!(entries)),
        "{v}"
    );

    // The last entry cut off: found at the end.
    sqlx::query("DELETE FROM audit_log WHERE seq = $1")
        .bind(entries)
        .execute(&mut db)
        .await
        .unwrap();
    let (code, v) = audit_verify(&segl);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["first_broken"], entries, "{v}");
    use sqlx::Connection;
    db.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 10. Keys
// ---------------------------------------------------------------------------------------

/// A `segl serve` of this file's own (to see the data directory it creates), killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `segl serve` on a data directory that does not exist yet and waits until it
/// listens.
fn serve_fresh(data_dir: &Path, database_url: Option<String>) -> Serve {
    let mut args: Vec<OsString> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        data_dir.into(),
    ];
    if let Some(u) = database_url {
        args.push("--database-url".into());
        args.push(u.into());
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_segl"));
    c.args(&args);
    for var in ["SEGL_DATA_DIR", "SEGL_DATABASE_URL", "SEGL_CONFIG"] {
        c.env_remove(var);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().expect("start segl serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("segl listening on ") {
                let _ = tx.send(());
            }
        }
    });
    let serve = Serve(child);
    rx.recv_timeout(Duration::from_secs(60))
        .expect("segl serve on a fresh data directory did not start listening");
    serve
}

/// `(alg prefix, kid)` of the key files, e.g. `("es256", "…")`.
fn key_files(keys: &Path) -> Vec<(String, String)> {
    names_in(keys)
        .iter()
        .map(|n| {
            let stem = n
                .strip_suffix(".pk8")
                .unwrap_or_else(|| panic!("key file {n} is not .pk8"));
            let mut parts = stem.splitn(3, '-');
            let alg = parts.next().unwrap().to_string();
            let ts = parts.next().unwrap_or_default();
            assert!(ts.parse::<i64>().is_ok(), "key file {n}: no timestamp");
            let kid = parts
                .next()
                .unwrap_or_else(|| panic!("key file {n}: no kid"))
                .to_string();
            (alg, kid)
        })
        .collect()
}

async fn jwks(server: &Server) -> Value {
    let r = get(&server.url("/oauth2/jwks")).await;
    r.expect_status(200);
    let v = r.json();
    for k in v["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no keys in {v}"))
    {
        assert!(
            k["kid"].as_str().is_some_and(|s| !s.is_empty()),
            "a JWK without kid: {k}"
        );
        assert_eq!(k["use"], "sig", "a signing key: {k}");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                k.get(private).is_none(),
                "the JWKS publishes private {private}: {k}"
            );
        }
    }
    v
}

/// `{kid: alg}` of a JWKS.
fn kids(jwks: &Value) -> BTreeMap<String, String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_string(),
                k["alg"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn verify_against(
    token: &CoreIdToken,
    jwks: &Value,
    client_id: &str,
    issuer: &str,
    nonce: &Nonce,
) -> Result<(), String> {
    let set: CoreJsonWebKeySet =
        serde_json::from_value(jwks.clone()).unwrap_or_else(|e| panic!("JWKS {jwks}: {e}"));
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(client_id.to_string()),
        IssuerUrl::new(issuer.to_string()).unwrap(),
        set,
    )
    .set_allowed_algs(segl_algs());
    token
        .claims(&verifier, nonce)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// The data directory is private (0700, keys and seal key 0600), discovery and the JWKS
/// publish ES256 and RS256 keys with kids (the files' kids, no private parts); after
/// `segl keys rotate --alg ES256` and a restart new tokens carry the new kid and a token
/// from before still verifies against the new JWKS.
async fn key_files_jwks_and_rotation(backend: Backend) {
    let mut fx = Fixture::new(backend, &[]);
    let dir = fx.segl.data_dir().to_path_buf();
    let keys_dir = dir.join("keys");
    // The harness made this data directory before the first start (with the umask's
    // mode), so its mode is the harness's; the directory segl creates itself is checked
    // below with a fresh one.
    assert_eq!(mode(&keys_dir), 0o700, "keys directory mode");
    assert_eq!(mode(&dir.join("seal.key")), 0o600, "seal.key mode");
    for n in names_in(&keys_dir) {
        assert_eq!(mode(&keys_dir.join(&n)), 0o600, "key file {n} mode");
    }
    let files = key_files(&keys_dir);
    let mut algs: Vec<&str> = files.iter().map(|(a, _)| a.as_str()).collect();
    algs.sort();
    assert_eq!(
        algs,
        vec!["es256", "rs256"],
        "one key per algorithm: {files:?}"
    );
    let es1 = files.iter().find(|(a, _)| a == "es256").unwrap().1.clone();
    let rs1 = files.iter().find(|(a, _)| a == "rs256").unwrap().1.clone();

    // A data directory segl creates itself at its first start.
    let fresh = dir.join("fresh").join("data");
    {
        let _serve = serve_fresh(&fresh, database_url(&fx.segl));
        assert_eq!(mode(&fresh), 0o700, "a new data directory is 0700");
        assert_eq!(mode(&fresh.join("keys")), 0o700);
        assert_eq!(mode(&fresh.join("seal.key")), 0o600);
        let new_keys = names_in(&fresh.join("keys"));
        assert_eq!(new_keys.len(), 2, "{new_keys:?}");
        for n in new_keys {
            assert_eq!(mode(&fresh.join("keys").join(&n)), 0o600, "{n}");
        }
    }

    // Discovery and JWKS.
    let doc = get(&fx.server.url("/.well-known/openid-configuration")).await;
    doc.expect_status(200);
    let doc = doc.json();
    let signing = doc["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap_or_else(|| panic!("no id_token_signing_alg_values_supported: {doc}"));
    assert!(
        signing.contains(&json!("ES256")) && signing.contains(&json!("RS256")),
        "{doc}"
    );
    let set1 = jwks(&fx.server).await;
    let expected: BTreeMap<String, String> = [
        (es1.clone(), "ES256".to_string()),
        (rs1.clone(), "RS256".to_string()),
    ]
    .into();
    assert_eq!(
        kids(&set1),
        expected,
        "the JWKS publishes the key files: {set1}"
    );

    // A token before the rotation.
    let issuer1 = fx.server.issuer();
    let rp = fx.rp.clone();
    let (_, client) = discover(&fx.server, &rp).await;
    let start = authorize(&client, &[], &[]);
    let mut b = fx.browser();
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut fx.device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &rp, &start, &issuer1);
    let tokens = exchange(&client, code, start.verifier).await;
    let old_token = tokens.id_token().expect("ID token").clone();
    let old_nonce = start.nonce;
    let (h, _) = jwt_parts(&old_token.to_string());
    assert_eq!(h["alg"], "ES256", "{h}");
    assert_eq!(h["kid"], es1.as_str(), "{h}");

    // Rotate and restart.
    let rotated = fx
        .segl
        .json(&["keys", "rotate", "--alg", "ES256", "--json"]);
    assert_eq!(rotated["alg"], "ES256", "{rotated}");
    let es2 = rotated["kid"]
        .as_str()
        .unwrap_or_else(|| panic!("no kid in {rotated}"))
        .to_string();
    assert_ne!(es2, es1, "a new key");
    for n in names_in(&keys_dir) {
        assert_eq!(
            mode(&keys_dir.join(&n)),
            0o600,
            "key file {n} mode after rotation"
        );
    }
    assert!(
        key_files(&keys_dir).contains(&("es256".to_string(), es2.clone())),
        "the new key is on disk"
    );
    assert_eq!(fx.segl.audit_count("keys.rotated"), 1);
    let Fixture {
        segl,
        server,
        mut device,
        sub,
        ..
    } = fx;
    drop(server);
    let server = Server::start(&segl, &[]);

    let set2 = jwks(&server).await;
    let expected: BTreeMap<String, String> = [
        (es1.clone(), "ES256".to_string()),
        (es2.clone(), "ES256".to_string()),
        (rs1.clone(), "RS256".to_string()),
    ]
    .into();
    assert_eq!(kids(&set2), expected, "old keys stay published: {set2}");
    verify_against(&old_token, &set2, &rp.client_id, &issuer1, &old_nonce)
        .unwrap_or_else(|e| panic!("a token from before the rotation no longer verifies: {e}"));
    // (And it is the kid that finds the key: without the old key it does not verify.)
    let mut without_old = set2.clone();
    without_old["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] != es1.as_str());
    assert!(
        verify_against(
            &old_token,
            &without_old,
            &rp.client_id,
            &issuer1,
            &old_nonce
        )
        .is_err(),
        "the old token must need the old key"
    );

    // New tokens carry the new kid.
    let issuer2 = server.issuer();
    let (_, client) = discover(&server, &rp).await;
    let start = authorize(&client, &[], &[]);
    let mut b = Browser::new(&server);
    let redirect_to = b
        .login(start.url.as_str(), NIN, &mut device, PASSWORD)
        .await;
    let code = code_from(&redirect_to, &rp, &start, &issuer2);
    let tokens = exchange(&client, code, start.verifier).await;
    let new_token = tokens.id_token().expect("ID token");
    let (h, c) = jwt_parts(&new_token.to_string());
    assert_eq!(h["kid"], es2.as_str(), "signed with the new key: {h}");
    assert_eq!(c["sub"], sub.as_str());
    verify_against(new_token, &set2, &rp.client_id, &issuer2, &start.nonce)
        .unwrap_or_else(|e| panic!("the new token does not verify: {e}"));
    // An RS256 client still gets the unrotated RS256 key.
    let rs_rp = segl.add_rp("RSA", REDIRECT_URI, &["--id-token-alg", "RS256"]);
    let (_, rs_client) = discover(&server, &rs_rp).await;
    let start = authorize(&rs_client, &[], &[]);
    let r = b.get(start.url.as_str()).await;
    r.expect_status(303);
    let code = code_from(&r.location().unwrap(), &rs_rp, &start, &issuer2);
    let tokens = exchange(&rs_client, code, start.verifier).await;
    let (h, _) = jwt_parts(&tokens.id_token().expect("ID token").to_string());
    assert_eq!(
        (h["alg"].as_str(), h["kid"].as_str()),
        (Some("RS256"), Some(rs1.as_str()))
    );
    segl.audit_ok();
}
