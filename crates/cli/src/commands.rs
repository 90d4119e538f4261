//! The commands. Each opens the data directory through [`open`], validates its input
//! before writing anything, and writes in one transaction.

use std::io::{BufRead, IsTerminal, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use segl_core::nin::Nin;
use segl_crypto::jose::{JwsAlg, KeyRing};
use segl_crypto::otp;
use segl_crypto::password::PasswordHasher;
use segl_crypto::pskc::{self, PskcKey, TokenKind};
use segl_crypto::random::{random_token, sha256_b64url};
use segl_crypto::seal::SealKey;
use segl_store::apps;
use segl_store::audit::{self, Event};
use segl_store::clients::{self, AuthMethod, Client};
use segl_store::devices::{self, DeviceSummary};
use segl_store::persons::{self, Person};
use segl_store::{Store, sqlite_url};
use serde_json::json;

use crate::config::{self, Config, Source};
use crate::{CliError, Global};

/// An opened data directory.
pub struct Opened {
    /// Configuration after file, environment and flags.
    pub config: Config,
    /// The store.
    pub store: Store,
    /// The data directory.
    pub dir: PathBuf,
    /// The CA and its key store.
    pub pki: segl_server::ca::Pki,
}

fn now() -> i64 {
    segl_server::system_now()
}

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failure(e.to_string())
}

/// Creates the data directory (0700) if missing, loads the configuration, opens (and
/// migrates) the database and makes sure the keys and the CA hierarchy exist.
pub async fn open(g: &Global) -> Result<Opened, CliError> {
    open_with(g, true).await
}

/// The configuration [`open`] uses (file, environment, `--database-url`), validated. It
/// creates nothing, so a command can check its input against the policy before [`open`]
/// makes the data directory.
pub fn load_config(g: &Global) -> Result<Config, CliError> {
    let mut cfg = config::load(&g.data_dir, g.config.as_deref())?.config;
    if let Some(url) = &g.database_url {
        cfg.database_url = Some(url.clone());
    }
    cfg.validate()?;
    Ok(cfg)
}

/// [`open`], creating the CA hierarchy or not (`segl ca import` brings its own root).
pub async fn open_with(g: &Global, init_ca: bool) -> Result<Opened, CliError> {
    let dir = g.data_dir.clone();
    let cfg = load_config(g)?;
    if !dir.exists() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        set_mode(&dir, 0o700)?;
    }
    let keys_dir = dir.join("keys");
    // Creates the ES256 and RS256 token-signing keys on first use.
    KeyRing::load_or_create(&keys_dir).map_err(|e| fail(format!("token-signing keys: {e}")))?;
    let seal = SealKey::load_or_create(&dir.join("seal.key"))
        .map_err(|e| fail(format!("seal key: {e}")))?;
    let url = match &cfg.database_url {
        Some(u) => u.clone(),
        None => sqlite_url(&dir.join("segl.db")),
    };
    let connections = cfg
        .database_max_connections
        .unwrap_or_else(segl_store::default_pg_connections);
    let store = Store::open_pooled(&url, seal, connections)
        .await
        .map_err(|e| fail(format!("database: {e}")))?;
    let base = cfg
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    let pki = crate::pki::open_pki(&cfg, &dir, &base)?;
    // The CA hierarchy exists from the first command on, as the token keys do.
    if init_ca {
        pki.ensure_hierarchy(&store, now())
            .await
            .map_err(|e| fail(format!("CA: {e}")))?;
    }
    Ok(Opened {
        config: cfg,
        store,
        dir,
        pki,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(format!("cannot set permissions on {}: {e}", path.display())))
}

pub(crate) fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

// ---------------------------------------------------------------------------------------
// serve

/// `segl serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long)]
    listen: Option<String>,
    /// Public issuer URL (default http://<listen address>).
    #[arg(long)]
    issuer: Option<String>,
    /// Seed a demo relying party at /demo, demo people and code devices.
    #[arg(long)]
    demo: bool,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(g: &Global, a: ServeArgs) -> Result<ExitCode, CliError> {
    let mut opened = open(g).await?;
    let cfg = &mut opened.config;
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(i) = a.issuer {
        cfg.issuer = Some(i);
    }
    if let Some(f) = a.log_format {
        cfg.log_format = f;
    }
    cfg.validate()?;
    init_logging(cfg);
    let addr: SocketAddr = cfg
        .listen
        .parse()
        .map_err(|_| CliError::Input("bad listen address".into()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| fail(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(fail)?;
    let issuer = cfg
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let keys = KeyRing::load_or_create(&opened.dir.join("keys")).map_err(fail)?;
    let hasher = PasswordHasher::new(cfg.argon2).map_err(fail)?;
    let settings = segl_server::Settings {
        issuer: issuer.clone(),
        policy: cfg.policy.clone(),
        cookie_secure: issuer.starts_with("https://"),
        max_body_bytes: cfg.max_body_bytes,
        sign: cfg.sign.clone(),
    };
    let store = opened.store.clone();
    let mut state = segl_server::AppState::new(store.clone(), keys, settings, hasher);
    if a.demo {
        let demo = segl_server::demo::seed(&store, &state.hasher, &issuer, now())
            .await
            .map_err(fail)?;
        // Demo people have active eIDs, so they get certificates like anyone else.
        let mut c = store.conn().await.map_err(fail)?;
        let mut ids = Vec::new();
        for p in &demo.people {
            if let Some(person) = persons::by_nin(&mut *c, &p.nin).await.map_err(fail)? {
                ids.push(person.id);
            }
        }
        drop(c);
        for id in ids {
            opened
                .pki
                .ensure_person_certificate(&store, &id, now())
                .await
                .map_err(|e| fail(format!("demo certificates: {e}")))?;
        }
        state.demo = Some(std::sync::Arc::new(demo));
    }
    let notifier = segl_server::notify::Notifier::new(cfg.notify.settings(&opened.dir)?)
        .map_err(CliError::Input)?;
    segl_server::notify::spawn_worker(store.clone(), notifier, now);
    // Pushes from the other nodes (PostgreSQL); nothing to listen to on SQLite.
    state.push.start_listener();
    // The CA's certificates and OCSP answers point at the issuer URL now known.
    let mut pki = opened.pki.clone();
    if cfg.pki.base_url.is_none() {
        let mut s = (*pki.settings).clone();
        s.urls.base = issuer.clone();
        pki.settings = std::sync::Arc::new(s);
    }
    let service = segl_server::pki_http::PkiService::load(pki, &store)
        .await
        .map_err(|e| fail(format!("CA: {e}")))?;
    state.pki = Some(std::sync::Arc::new(service));
    segl_server::pki_http::spawn_tasks(&state);
    let push = state.push.clone();
    let listener = segl_server::app_events::split(listener, state.clone()).map_err(fail)?;
    let app = segl_server::router(state);

    // Housekeeping: expired flows, codes and tokens; signing orders past their retention;
    // eID orders whose activation codes ran out.
    let purge_store = store.clone();
    let sign_retention = cfg.sign.retention_secs;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(e) = purge_store.purge_expired(now()).await {
                tracing::warn!(error = %e, "purging expired rows failed");
            }
            let purged = match purge_store.conn().await {
                Ok(mut c) => segl_store::sign::purge(&mut *c, now() - sign_retention).await,
                Err(e) => Err(e),
            };
            if let Err(e) = purged {
                tracing::warn!(error = %e, "purging old signing orders failed");
            }
            let expired = match purge_store.conn().await {
                Ok(mut c) => segl_store::orders::expire(&mut *c, now()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = expired {
                tracing::warn!(error = %e, "expiring eID orders failed");
            }
        }
    });

    println!("segl listening on http://{local}");
    println!("  issuer:    {issuer}");
    println!("  discovery: {issuer}/.well-known/openid-configuration");
    println!("  health:    {issuer}/healthz   metrics: {issuer}/metrics");
    println!("  PKI:       {issuer}/pki/ca/root.pem   OCSP: {issuer}/pki/ocsp");
    if a.demo {
        println!();
        println!("  *** DEMO MODE: seeded demo people, code devices and a demo client. ***");
        println!("  *** Never use --demo in production.                               ***");
        println!("  demo:      {issuer}/demo");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tracing::info!(%local, %issuer, demo = a.demo, backend = ?store.backend(), "segl started");

    // One service for all connections: `serve(listener, router)` would clone the whole
    // router with its layers per connection (about 60 KB each, measured in bench/). The
    // apps' event streams are served apart (`app_events`), without hyper's buffers.
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Open push streams end, so the graceful shutdown does not wait on them.
            push.close();
        })
        .await
        .map_err(fail)?;
    store.close().await;
    tracing::info!("segl stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("SEGL_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&cfg.log_level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if cfg.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

// ---------------------------------------------------------------------------------------
// person

/// `segl person …`
#[derive(Subcommand, Debug)]
pub enum PersonCmd {
    /// Add a person.
    Add {
        /// National identity number (fødselsnummer or D-number).
        #[arg(long)]
        nin: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// Mobile number (+47 and eight digits).
        #[arg(long)]
        phone: Option<String>,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Show a person (no secrets).
    Show {
        /// National identity number.
        #[arg(
            long,
            required_unless_present_any = ["app_id", "order"],
            conflicts_with_all = ["app_id", "order"]
        )]
        nin: Option<String>,
        /// Or the app ID the person's app shows (support asks for it on the phone).
        #[arg(long, conflicts_with = "order")]
        app_id: Option<String>,
        /// Or the number of an approved eID order (12 digits).
        #[arg(long)]
        order: Option<String>,
    },
    /// Set a new password (from the first line of standard input), as support does after
    /// checking the person's identity. Refused while an app activation is pending.
    SetPassword {
        /// National identity number.
        #[arg(long)]
        nin: String,
    },
    /// Unlock a password locked after too many failures.
    UnlockPassword {
        /// National identity number.
        #[arg(long)]
        nin: String,
    },
    /// Block the person's eID ("sperre"), as support does for a lost phone or code device:
    /// the app is deactivated, code devices blocked, sessions ended, tokens and
    /// certificates revoked, and the person told by SMS and email. Run again, it finishes
    /// revocations a crash left behind and changes nothing else.
    Block {
        /// National identity number.
        #[arg(long)]
        nin: String,
        /// Why: lost, stolen, fraud, deceased or other.
        #[arg(long)]
        reason: String,
        /// Who blocks, for the audit log (a support agent's name or id).
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Start an app activation and print its one-time activation code, to send by letter
    /// (or, with `--letter-to`, queue the letter and print only its outbox id).
    /// The code opens after the security period (`[policy.app]`) and is usable once
    /// within the completion window; any other pending activation of the person ends.
    ActivationCode {
        /// National identity number.
        #[arg(long)]
        nin: String,
        /// Send the code by letter to this postal address (2 to 6 lines separated by
        /// commas): a PDF in the print folder; the code is then not shown.
        #[arg(long)]
        letter_to: Option<String>,
    },
}

/// A `--by` (who did it, for the audit log): 1 to 100 printable characters.
pub(crate) fn check_by(by: &str) -> Result<String, CliError> {
    let by = by.trim();
    if by.is_empty() || by.chars().count() > 100 || by.chars().any(char::is_control) {
        return Err(CliError::Input(
            "--by must be 1 to 100 printable characters".into(),
        ));
    }
    Ok(by.to_string())
}

/// A server-side refusal as the CLI reports it: bad input for a 4xx, a failure otherwise.
pub(crate) fn api_error(e: segl_server::error::ApiError) -> CliError {
    let (status, code, detail, _) = e.parts();
    if status.is_client_error() {
        CliError::Input(format!("{code}: {detail}"))
    } else {
        CliError::Failure(detail)
    }
}

/// The person with this number if their eID is not blocked: what adds a credential or a
/// password must not undo a block.
async fn unblocked_person_by_nin(c: &mut segl_store::Conn, nin: &Nin) -> Result<Person, CliError> {
    let p = person_by_nin(c, nin).await?;
    if let Some((at, reason)) = persons::blocked(&mut *c, &p.id).await? {
        return Err(CliError::Input(format!(
            "this person's eID is blocked ({reason}, since {} UTC); unblocking needs a new identity check",
            segl_server::flow::rfc3339(at)
        )));
    }
    Ok(p)
}

/// The person with this number, or a bad-input error saying there is none.
pub(crate) async fn person_by_nin(c: &mut segl_store::Conn, nin: &Nin) -> Result<Person, CliError> {
    persons::by_nin(c, nin.as_str())
        .await?
        .ok_or_else(|| CliError::Input("no person with this national identity number".into()))
}

pub(crate) fn parse_nin(s: &str) -> Result<Nin, CliError> {
    Nin::parse(s).map_err(|e| CliError::Input(format!("invalid national identity number: {e}")))
}

pub(crate) fn read_stdin_line(what: &str) -> Result<zeroize::Zeroizing<String>, CliError> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Input(format!("cannot read the {what} from standard input: {e}")))?;
    let trimmed = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    if trimmed.is_empty() {
        return Err(CliError::Input(format!(
            "the {what} on standard input is empty"
        )));
    }
    Ok(trimmed)
}

/// `argon2id m=…,t=…,p=…` from a PHC string, without salt or hash.
fn phc_params(phc: &str) -> Option<String> {
    let mut parts = phc.split('$').skip(1);
    let alg = parts.next()?;
    let params = parts.find(|p| p.starts_with("m="))?;
    Some(format!("{alg} {params}"))
}

fn validate_phone(p: &str) -> Result<String, CliError> {
    let compact: String = p.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = compact.strip_prefix("+47").unwrap_or(&compact);
    if digits.len() == 8
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(digits.as_bytes()[0], b'4' | b'9')
    {
        Ok(format!("+47{digits}"))
    } else {
        Err(CliError::Input(format!(
            "phone '{p}' is not a Norwegian mobile number (+47 and eight digits starting with 4 or 9)"
        )))
    }
}

fn validate_email(e: &str) -> Result<String, CliError> {
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.chars().any(char::is_whitespace);
    if ok {
        Ok(e.to_string())
    } else {
        Err(CliError::Input(format!(
            "email '{e}' is not a valid address"
        )))
    }
}

/// `segl person …`
pub async fn person(g: &Global, cmd: PersonCmd) -> Result<ExitCode, CliError> {
    match cmd {
        PersonCmd::Add {
            nin,
            name,
            phone,
            email,
            password_stdin,
        } => {
            // Everything is checked before the database is touched.
            let nin = parse_nin(&nin)?;
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
                return Err(CliError::Input(
                    "name must be 1 to 200 printable characters".into(),
                ));
            }
            let phone = phone.as_deref().map(validate_phone).transpose()?;
            let email = email.as_deref().map(validate_email).transpose()?;
            let password = if password_stdin {
                Some(read_stdin_line("password")?)
            } else {
                None
            };
            if let Some(pw) = &password {
                let policy = load_config(g)?.policy.password;
                segl_core::password::check_new_password(pw, &policy, Some(&nin))
                    .map_err(|e| CliError::Input(format!("password refused: {e}")))?;
            }
            let o = open(g).await?;
            let phc = match &password {
                Some(pw) => {
                    let hasher = PasswordHasher::new(o.config.argon2).map_err(fail)?;
                    Some(hasher.hash(pw).map_err(fail)?)
                }
                None => None,
            };
            let t = now();
            let p = Person {
                id: uuid::Uuid::new_v4().to_string(),
                sub: uuid::Uuid::new_v4().to_string(),
                nin: nin.as_str().to_string(),
                name,
                birthdate: nin.birth_date().to_string(),
                phone,
                email,
                created_at: t,
            };
            let mut tx = o.store.begin().await?;
            persons::insert(&mut tx, &p).await?;
            if let Some(phc) = &phc {
                persons::set_password(&mut tx, &p.id, phc, t).await?;
            }
            audit::append(
                &mut tx,
                &Event {
                    event: "person.added",
                    subject: Some(&p.id),
                    client_id: None,
                    data: json!({"password_set": phc.is_some()}),
                },
                t,
            )
            .await?;
            tx.commit().await.map_err(fail)?;
            if g.json {
                print_json(
                    &json!({"id": p.id, "sub": p.sub, "name": p.name, "birthdate": p.birthdate}),
                );
            } else {
                println!("added {} (sub {})", p.name, p.sub);
            }
        }
        PersonCmd::Show { nin, app_id, order } => {
            let nin = nin.as_deref().map(parse_nin).transpose()?;
            let order = order
                .as_deref()
                .map(segl_core::order::OrderNumber::parse)
                .transpose()
                .map_err(|e| CliError::Input(format!("--order: {e}")))?;
            let o = open(g).await?;
            let mut c = o.store.conn().await?;
            let p = match (&nin, &app_id) {
                (Some(nin), _) => person_by_nin(&mut c, nin).await?,
                (None, None) if order.is_some() => {
                    let number = order.as_ref().map(|n| n.as_str()).unwrap_or_default();
                    let found = segl_store::orders::by_number(&mut *c, number)
                        .await?
                        .ok_or_else(|| CliError::Input("no order has this number".into()))?;
                    let Some(person_id) = found.person_id else {
                        return Err(CliError::Input(format!(
                            "the order is {}: a person comes with its approval",
                            found.state
                        )));
                    };
                    persons::by_id(&mut c, &person_id)
                        .await?
                        .ok_or_else(|| fail("the order's person is missing"))?
                }
                (None, Some(app_id)) => {
                    let app = apps::by_app_id(&mut c, app_id.trim())
                        .await?
                        .ok_or_else(|| CliError::Input("no app has this app ID".into()))?;
                    persons::by_id(&mut c, &app.person_id)
                        .await?
                        .ok_or_else(|| fail("the app's person is missing"))?
                }
                (None, None) => {
                    return Err(CliError::Input("give --nin, --app-id or --order".into()));
                }
            };
            let pw = persons::password(&mut c, &p.id).await?;
            let app_list: Vec<serde_json::Value> = apps::for_person(&mut c, &p.id)
                .await?
                .iter()
                .map(|a| {
                    json!({
                        "app_id": a.app_id, "state": a.state, "label": a.label,
                        "activated_at": a.activated_at, "deactivated_why": a.deactivated_why,
                    })
                })
                .collect();
            let v = json!({
                "id": p.id, "sub": p.sub, "name": p.name, "birthdate": p.birthdate,
                "phone": p.phone, "email": p.email,
                "password_set": pw.is_some(),
                "password_locked": pw.as_ref().is_some_and(|r| r.locked),
                "password_failures": pw.as_ref().map_or(0, |r| r.failures),
                // The hash's algorithm and cost (not the hash): shows when a rehash happened.
                "password_hash_params": pw.as_ref().and_then(|r| phc_params(&r.phc)),
                "apps": app_list,
            });
            if g.json {
                print_json(&v);
            } else {
                println!(
                    "{} born {} sub {} password {}",
                    p.name,
                    p.birthdate,
                    p.sub,
                    match &pw {
                        None => "not set",
                        Some(r) if r.locked => "LOCKED",
                        Some(_) => "set",
                    }
                );
                for a in &app_list {
                    println!(
                        "app {} {}",
                        a["app_id"].as_str().unwrap_or("?"),
                        a["state"].as_str().unwrap_or("?")
                    );
                }
            }
        }
        PersonCmd::SetPassword { nin } => {
            let nin = parse_nin(&nin)?;
            let o = open(g).await?;
            let pw = read_stdin_line("password")?;
            segl_core::password::check_new_password(&pw, &o.config.policy.password, Some(&nin))
                .map_err(|e| CliError::Input(format!("password refused: {e}")))?;
            let hasher = PasswordHasher::new(o.config.argon2).map_err(fail)?;
            let phc = hasher.hash(&pw).map_err(fail)?;
            let t = now();
            let mut tx = o.store.begin().await?;
            let p = unblocked_person_by_nin(&mut tx, &nin).await?;
            segl_server::app_api::password_change_allowed(&mut tx, &o.config.policy.app, &p.id, t)
                .await
                .map_err(api_error)?;
            persons::set_password(&mut tx, &p.id, &phc, t).await?;
            audit::append(
                &mut tx,
                &Event {
                    event: "password.changed",
                    subject: Some(&p.id),
                    client_id: None,
                    data: json!({"by": "cli"}),
                },
                t,
            )
            .await?;
            tx.commit().await.map_err(fail)?;
            let cert = crate::pki::certify(&o, &p.id).await?;
            if g.json {
                print_json(&json!({"changed": true, "certificate": cert}));
            } else {
                println!("password set");
                if let Some(c) = cert {
                    println!("the eID is active: certificate {c} issued");
                }
            }
        }
        PersonCmd::UnlockPassword { nin } => {
            let nin = parse_nin(&nin)?;
            let o = open(g).await?;
            let mut tx = o.store.begin().await?;
            let p = person_by_nin(&mut tx, &nin).await?;
            if !persons::unlock_password(&mut tx, &p.id).await? {
                return Err(CliError::Input("this person has no password".into()));
            }
            audit::append(
                &mut tx,
                &Event {
                    event: "password.unlocked",
                    subject: Some(&p.id),
                    client_id: None,
                    data: json!({"by": "cli"}),
                },
                now(),
            )
            .await?;
            tx.commit().await.map_err(fail)?;
            if g.json {
                print_json(&json!({"unlocked": true}));
            } else {
                println!("password unlocked");
            }
        }
        PersonCmd::Block { nin, reason, by } => {
            let nin = parse_nin(&nin)?;
            let reason = segl_server::lifecycle::BlockReason::parse(&reason).ok_or_else(|| {
                CliError::Input(format!(
                    "--reason '{reason}' is not one of lost, stolen, fraud, deceased, other"
                ))
            })?;
            let o = open(g).await?;
            let p = person_by_nin(&mut *o.store.conn().await?, &nin).await?;
            let done = segl_server::lifecycle::block(&o.store, &o.pki, &p, reason, &by, now())
                .await
                .map_err(api_error)?;
            if g.json {
                print_json(&json!(done));
            } else {
                if done.newly_blocked {
                    println!("eID blocked ({})", reason.as_str());
                } else {
                    println!("the eID was blocked already");
                }
                if let Some(app) = &done.app_id {
                    println!("  app {app} deactivated");
                }
                for d in &done.devices {
                    println!("  code device {d} blocked");
                }
                println!(
                    "  {} sessions ended, {} tokens revoked",
                    done.sessions, done.tokens
                );
                for c in &done.certificates {
                    println!("  certificate {c} revoked");
                }
                if !done.notified.is_empty() {
                    println!("  the person is told by {}", done.notified.join(" and "));
                }
            }
        }
        PersonCmd::ActivationCode { nin, letter_to } => {
            let nin = parse_nin(&nin)?;
            let letter_to = letter_to
                .map(|a| segl_server::notify::letter::parse_address(&a))
                .transpose()
                .map_err(|e| CliError::Input(format!("--letter-to: {e}")))?;
            let o = open(g).await?;
            let now = now();
            let mut tx = o.store.begin().await?;
            let p = unblocked_person_by_nin(&mut tx, &nin).await?;
            let started = segl_server::app_api::start_activation(
                &mut tx,
                &o.store,
                &o.config.policy.app,
                &p,
                apps::ActivationMethod::Letter,
                "cli",
                now,
            )
            .await
            .map_err(api_error)?;
            if let Some(address) = &letter_to {
                let body = segl_server::notify::activation_letter_text(
                    &started.code,
                    &segl_server::flow::rfc3339(started.opens_at),
                    &segl_server::flow::rfc3339(started.expires_at),
                );
                let id = segl_server::notify::letter(
                    &mut tx,
                    &o.store,
                    &p,
                    address,
                    "app.activation_letter",
                    &body,
                    now,
                )
                .await
                .map_err(api_error)?;
                tx.commit().await.map_err(fail)?;
                if g.json {
                    print_json(&json!({
                        "letter": id,
                        "opens_at": started.opens_at,
                        "expires_at": started.expires_at,
                        "cancelled_pending": started.cancelled,
                    }));
                } else {
                    println!("activation code queued for a letter: outbox message {id}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            tx.commit().await.map_err(fail)?;
            let (code, opens_at, expires_at, cancelled) = (
                started.code,
                started.opens_at,
                started.expires_at,
                started.cancelled,
            );
            if g.json {
                print_json(&json!({
                    "activation_code": code,
                    "opens_at": opens_at,
                    "expires_at": expires_at,
                    "cancelled_pending": cancelled,
                }));
            } else {
                println!("activation code: {code}");
                println!(
                    "usable from {} until {} (UTC); shown once, segl keeps only its hash",
                    segl_server::flow::rfc3339(opens_at),
                    segl_server::flow::rfc3339(expires_at)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// token

/// `segl token …`
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Import every code device of a PSKC file (RFC 6030), or none.
    Import {
        /// The PSKC file.
        file: PathBuf,
        /// Pre-shared transport key (hex), for encrypted files.
        #[arg(long)]
        psk_hex: Option<String>,
        /// Read the PBKDF2 passphrase from standard input, for encrypted files.
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// Assign a code device to a person.
    Assign {
        /// Device serial.
        #[arg(long)]
        serial: String,
        /// National identity number.
        #[arg(long)]
        nin: String,
    },
    /// Resynchronise a device with two consecutive codes (also unblocks it).
    Resync {
        /// Device serial.
        #[arg(long)]
        serial: String,
        /// A code.
        #[arg(long)]
        code1: String,
        /// The next code.
        #[arg(long)]
        code2: String,
    },
    /// List code devices.
    List {
        /// Only this person's devices.
        #[arg(long)]
        nin: Option<String>,
    },
    /// Unblock a device blocked after too many wrong codes.
    Unblock {
        /// Device serial.
        #[arg(long)]
        serial: String,
    },
}

/// `segl token …`
pub async fn token(g: &Global, cmd: TokenCmd) -> Result<ExitCode, CliError> {
    match cmd {
        TokenCmd::Import {
            file,
            psk_hex,
            passphrase_stdin,
        } => import(g, &file, psk_hex, passphrase_stdin).await,
        TokenCmd::Assign { serial, nin } => {
            let nin = parse_nin(&nin)?;
            let o = open(g).await?;
            let mut tx = o.store.begin().await?;
            let p = unblocked_person_by_nin(&mut tx, &nin).await?;
            let d = devices::by_serial(&mut tx, &serial)
                .await?
                .ok_or_else(|| CliError::Input(format!("no code device with serial {serial}")))?;
            if d.person_id.as_deref().is_some_and(|x| x != p.id) {
                return Err(CliError::Input(format!(
                    "code device {serial} is assigned to someone else"
                )));
            }
            devices::assign(&mut tx, &serial, &p.id).await?;
            audit::append(
                &mut tx,
                &Event {
                    event: "token.assigned",
                    subject: Some(&p.id),
                    client_id: None,
                    data: json!({"serial": serial}),
                },
                now(),
            )
            .await?;
            tx.commit().await.map_err(fail)?;
            let cert = crate::pki::certify(&o, &p.id).await?;
            if g.json {
                print_json(&json!({"serial": serial, "nin": nin.as_str(), "certificate": cert}));
            } else {
                println!("code device {serial} assigned");
                if let Some(c) = cert {
                    println!("the eID is active: certificate {c} issued");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::Resync {
            serial,
            code1,
            code2,
        } => {
            let o = open(g).await?;
            let policy = o.config.policy.clone();
            let mut tx = o.store.begin().await?;
            let d = devices::by_serial(&mut tx, &serial)
                .await?
                .ok_or_else(|| CliError::Input(format!("no code device with serial {serial}")))?;
            let secret = d.secret(&o.store)?;
            let t = now();
            let out = match d.kind {
                TokenKind::Hotp { .. } => {
                    let c2 = otp::resync_hotp(
                        d.algorithm,
                        &secret,
                        d.digits,
                        d.counter,
                        policy.resync_hotp_search,
                        &code1,
                        &code2,
                    )
                    .ok_or_else(|| {
                        CliError::Input(
                            "the two codes do not match consecutive codes of this device".into(),
                        )
                    })?;
                    devices::resynced(&mut tx, &serial, c2 + 1, d.last_step, 0).await?;
                    json!({"serial": serial, "counter": c2 + 1})
                }
                TokenKind::Totp { step, t0 } => {
                    let s2 = otp::resync_totp(
                        d.algorithm,
                        &secret,
                        d.digits,
                        step,
                        t0,
                        t,
                        policy.resync_totp_steps,
                        &code1,
                        &code2,
                    )
                    .ok_or_else(|| {
                        CliError::Input(
                            "the two codes do not match consecutive codes of this device".into(),
                        )
                    })?;
                    let drift = s2 - otp::totp_step(t, step, t0);
                    devices::resynced(&mut tx, &serial, d.counter, Some(s2), drift).await?;
                    json!({"serial": serial, "drift": drift})
                }
            };
            audit::append(
                &mut tx,
                &Event {
                    event: "token.resynced",
                    subject: d.person_id.as_deref(),
                    client_id: None,
                    data: out.clone(),
                },
                t,
            )
            .await?;
            tx.commit().await.map_err(fail)?;
            if g.json {
                print_json(&out);
            } else {
                println!("code device {serial} resynchronised");
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::List { nin } => {
            let o = open(g).await?;
            let mut c = o.store.conn().await?;
            let person = match nin {
                Some(n) => {
                    let n = parse_nin(&n)?;
                    Some(person_by_nin(&mut c, &n).await?.id)
                }
                None => None,
            };
            let list: Vec<DeviceSummary> = devices::list(&mut c, person.as_deref())
                .await?
                .iter()
                .map(DeviceSummary::from)
                .collect();
            if g.json {
                print_json(&serde_json::to_value(&list).map_err(fail)?);
            } else {
                for d in &list {
                    println!(
                        "{:<16} {:<5} {} digits  {:<8} {}  failures {}",
                        d.serial,
                        d.kind,
                        d.digits,
                        if d.state == devices::DeviceState::Active {
                            "active"
                        } else {
                            "BLOCKED"
                        },
                        if d.assigned { "assigned" } else { "free" },
                        d.failures
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCmd::Unblock { serial } => {
            let o = open(g).await?;
            let mut tx = o.store.begin().await?;
            devices::unblock(&mut tx, &serial).await?;
            audit::append(
                &mut tx,
                &Event {
                    event: "token.unblocked",
                    subject: None,
                    client_id: None,
                    data: json!({"serial": serial}),
                },
                now(),
            )
            .await?;
            tx.commit().await.map_err(fail)?;
            if g.json {
                print_json(&json!({"serial": serial, "state": "active"}));
            } else {
                println!("code device {serial} unblocked");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn import(
    g: &Global,
    file: &Path,
    psk_hex: Option<String>,
    passphrase_stdin: bool,
) -> Result<ExitCode, CliError> {
    let meta =
        std::fs::metadata(file).map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?;
    if meta.len() as usize > pskc::MAX_PSKC_BYTES {
        return Err(CliError::Input(format!(
            "{} is larger than {} bytes",
            file.display(),
            pskc::MAX_PSKC_BYTES
        )));
    }
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?;
    let key = match (psk_hex, passphrase_stdin) {
        (Some(_), true) => {
            return Err(CliError::Input(
                "give either --psk-hex or --passphrase-stdin".into(),
            ));
        }
        (Some(h), false) => {
            let bytes = data_encoding::HEXLOWER_PERMISSIVE
                .decode(h.trim().as_bytes())
                .map_err(|_| CliError::Input("--psk-hex is not hexadecimal".into()))?;
            Some(PskcKey::PreShared(zeroize::Zeroizing::new(bytes)))
        }
        (None, true) => Some(PskcKey::Passphrase(read_stdin_line("passphrase")?)),
        (None, false) => None,
    };
    let tokens = pskc::parse_pskc(&text, key.as_ref())
        .map_err(|e| CliError::Input(format!("{}: {e}", file.display())))?;
    let o = open(g).await?;
    let bar = if std::io::stderr().is_terminal() && !g.json {
        let b = indicatif::ProgressBar::new(tokens.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} importing [{bar:40}] {pos}/{len} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let t = now();
    let mut tx = o.store.begin().await?;
    for (i, tok) in tokens.iter().enumerate() {
        // One transaction: a duplicate serial rolls back the whole file.
        devices::import(&mut tx, &o.store, tok, t)
            .await
            .map_err(|e| {
                CliError::Input(format!(
                    "entry {} ({}): {e}; nothing was imported",
                    i + 1,
                    tok.serial
                ))
            })?;
        bar.inc(1);
    }
    let serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).collect();
    audit::append(&mut tx, &Event { event: "token.imported", subject: None, client_id: None, data: json!({"count": tokens.len(), "file": file.file_name().map(|f| f.to_string_lossy().to_string())}) }, t).await?;
    tx.commit().await.map_err(fail)?;
    bar.finish_and_clear();
    if g.json {
        print_json(&json!({"imported": tokens.len(), "serials": serials}));
    } else {
        println!("imported {} code devices", tokens.len());
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// rp

/// `segl rp …`
#[derive(Subcommand, Debug)]
pub enum RpCmd {
    /// Register a relying party (OIDC client).
    Add {
        /// Display name shown to people.
        #[arg(long)]
        name: String,
        /// Redirect URI (exact match; repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Post-logout redirect URI (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE required).
        #[arg(long)]
        public: bool,
        /// Token endpoint authentication method.
        #[arg(long, value_parser = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"])]
        auth_method: Option<String>,
        /// JWKS file with the client's public keys (private_key_jwt).
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// ID token signing algorithm.
        #[arg(long, default_value = "ES256", value_parser = ["ES256", "RS256"])]
        id_token_alg: String,
        /// Client id (default: random).
        #[arg(long)]
        client_id: Option<String>,
    },
    /// List relying parties.
    List,
}

fn validate_redirect(uri: &str) -> Result<(), CliError> {
    let u =
        url::Url::parse(uri).map_err(|e| CliError::Input(format!("redirect URI '{uri}': {e}")))?;
    if u.fragment().is_some() {
        return Err(CliError::Input(format!(
            "redirect URI '{uri}' must not have a fragment"
        )));
    }
    let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(CliError::Input(format!(
            "redirect URI '{uri}' must use https (http only for loopback)"
        ))),
        // Private-use schemes for native apps (RFC 8252) contain a dot.
        s if s.contains('.') => Ok(()),
        _ => Err(CliError::Input(format!(
            "redirect URI '{uri}' has an unsupported scheme"
        ))),
    }
}

/// `segl rp …`
pub async fn rp(g: &Global, cmd: RpCmd) -> Result<ExitCode, CliError> {
    match cmd {
        RpCmd::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            auth_method,
            jwks,
            id_token_alg,
            client_id,
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(CliError::Input("name must be 1 to 100 characters".into()));
            }
            for u in redirect_uris.iter().chain(&post_logout_redirect_uris) {
                validate_redirect(u)?;
            }
            let method = match (public, auth_method.as_deref()) {
                (true, None | Some("none")) => AuthMethod::None,
                (true, Some(_)) => {
                    return Err(CliError::Input(
                        "--public clients use --auth-method none".into(),
                    ));
                }
                (false, None) if jwks.is_some() => AuthMethod::PrivateKeyJwt,
                (false, None) => AuthMethod::ClientSecretBasic,
                (false, Some(m)) => AuthMethod::parse(m)
                    .ok_or_else(|| CliError::Input(format!("unknown auth method {m}")))?,
            };
            let jwks = match (&jwks, method) {
                (Some(p), AuthMethod::PrivateKeyJwt) => {
                    let text = std::fs::read_to_string(p)
                        .map_err(|e| CliError::Input(format!("{}: {e}", p.display())))?;
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|e| CliError::Input(format!("{}: not JSON: {e}", p.display())))?;
                    if v["keys"].as_array().is_none_or(|k| k.is_empty()) {
                        return Err(CliError::Input(format!(
                            "{}: a JWKS needs a non-empty \"keys\" array",
                            p.display()
                        )));
                    }
                    Some(v)
                }
                (None, AuthMethod::PrivateKeyJwt) => {
                    return Err(CliError::Input("private_key_jwt needs --jwks FILE".into()));
                }
                (Some(_), _) => {
                    return Err(CliError::Input("--jwks is only for private_key_jwt".into()));
                }
                (None, _) => None,
            };
            let client_id = client_id.unwrap_or_else(|| random_token(16));
            if client_id.is_empty()
                || client_id.len() > 100
                || !client_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(CliError::Input(
                    "client id must be 1 to 100 of A-Z a-z 0-9 - _ .".into(),
                ));
            }
            let secret = matches!(
                method,
                AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
            )
            .then(|| random_token(32));
            let client = Client {
                client_id: client_id.clone(),
                name: name.clone(),
                secret_hash: secret.as_ref().map(|s| sha256_b64url(s.as_bytes())),
                auth_method: method,
                redirect_uris: redirect_uris.clone(),
                post_logout_redirect_uris,
                jwks,
                id_token_alg: id_token_alg.clone(),
            };
            let o = open(g).await?;
            let t = now();
            let mut tx = o.store.begin().await?;
            clients::insert(&mut tx, &client, t).await?;
            audit::append(&mut tx, &Event { event: "client.added", subject: None, client_id: Some(&client_id), data: json!({"name": name, "auth_method": method.as_str(), "redirect_uris": redirect_uris}) }, t).await?;
            tx.commit().await.map_err(fail)?;
            if g.json {
                let mut v = json!({"client_id": client_id, "name": name, "redirect_uris": redirect_uris, "auth_method": method.as_str(), "id_token_alg": id_token_alg});
                if let Some(s) = &secret {
                    v["client_secret"] = json!(s);
                }
                print_json(&v);
            } else {
                println!("client_id:     {client_id}");
                if let Some(s) = &secret {
                    println!("client_secret: {s}");
                    println!("(the secret is shown once; segl keeps only its hash)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RpCmd::List => {
            let o = open(g).await?;
            let mut c = o.store.conn().await?;
            let list = clients::list(&mut c).await?;
            if g.json {
                let v: Vec<_> = list.iter().map(|c| json!({"client_id": c.client_id, "name": c.name, "redirect_uris": c.redirect_uris, "public": c.is_public(), "auth_method": c.auth_method.as_str()})).collect();
                print_json(&json!(v));
            } else {
                for c in &list {
                    println!(
                        "{:<24} {:<24} {}",
                        c.client_id,
                        c.name,
                        c.redirect_uris.join(" ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ---------------------------------------------------------------------------------------
// keys, audit, config

/// `segl keys …`
#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Make a new token-signing key current; older keys stay published.
    Rotate {
        /// Algorithm of the new key.
        #[arg(long, default_value = "ES256", value_parser = ["ES256", "RS256"])]
        alg: String,
    },
}

/// `segl keys …`
pub async fn keys(g: &Global, cmd: KeysCmd) -> Result<ExitCode, CliError> {
    match cmd {
        KeysCmd::Rotate { alg } => {
            let o = open(g).await?;
            let alg: JwsAlg = alg
                .parse()
                .map_err(|_| CliError::Input("unknown algorithm".into()))?;
            let kid = KeyRing::rotate(&o.dir.join("keys"), alg).map_err(fail)?;
            let mut tx = o.store.begin().await?;
            audit::append(
                &mut tx,
                &Event {
                    event: "keys.rotated",
                    subject: None,
                    client_id: None,
                    data: json!({"kid": kid, "alg": alg.as_str()}),
                },
                now(),
            )
            .await?;
            tx.commit().await.map_err(fail)?;
            if g.json {
                print_json(&json!({"kid": kid, "alg": alg.as_str()}));
            } else {
                println!(
                    "new {} key {kid} (restart the server to sign with it)",
                    alg.as_str()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `segl audit …`
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check the hash chain; names the first broken entry.
    Verify,
    /// Show the latest entries.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// `segl audit …`
pub async fn audit(g: &Global, cmd: AuditCmd) -> Result<ExitCode, CliError> {
    let o = open(g).await?;
    let mut c = o.store.conn().await?;
    match cmd {
        AuditCmd::Verify => {
            let r = audit::verify(&mut c).await?;
            if g.json {
                print_json(&serde_json::to_value(&r).map_err(fail)?);
            } else if r.ok {
                println!("audit log intact: {} entries", r.entries);
            } else {
                println!(
                    "audit log BROKEN at entry {}: {}",
                    r.first_broken.unwrap_or_default(),
                    r.reason.as_deref().unwrap_or("")
                );
            }
            Ok(if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCmd::List { limit } => {
            if !(1..=10_000).contains(&limit) {
                return Err(CliError::Input(
                    "--limit must be between 1 and 10000".into(),
                ));
            }
            let entries = audit::latest(&mut c, limit).await?;
            if g.json {
                let v: Vec<_> = entries.iter().map(|e| json!({"seq": e.seq, "ts": e.ts, "event": e.event, "subject": e.subject, "client_id": e.client_id, "data": serde_json::from_str::<serde_json::Value>(&e.data).unwrap_or_default()})).collect();
                print_json(&json!(v));
            } else {
                for e in entries.iter().rev() {
                    println!(
                        "{:>6} {} {:<22} {} {}",
                        e.seq,
                        e.ts,
                        e.event,
                        e.subject.as_deref().unwrap_or("-"),
                        e.data
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `segl config …`
#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print every value and where it came from.
    Show,
}

/// `segl config show`.
pub async fn config(g: &Global, cmd: ConfigCmd) -> Result<ExitCode, CliError> {
    let ConfigCmd::Show = cmd;
    let loaded = config::load(&g.data_dir, g.config.as_deref())?;
    let mut cfg = loaded.config;
    let mut sources = loaded.sources;
    if let Some(u) = &g.database_url {
        cfg.database_url = Some(u.clone());
        sources.insert("database_url".into(), Source::Flag);
    }
    cfg.validate()?;
    // Secrets are shown as set or not, never their value.
    for secret in [
        &mut cfg.pki.master_key,
        &mut cfg.pki.pkcs11_pin,
        &mut cfg.notify.smtp.password,
        &mut cfg.notify.sms_gateway.authorization,
    ] {
        if secret.is_some() {
            *secret = Some("(set, not shown)".into());
        }
    }
    let mut flat = Vec::new();
    flatten("", &serde_json::to_value(&cfg).map_err(fail)?, &mut flat);
    if g.json {
        let v: Vec<_> = flat.iter().map(|(k, v)| json!({"key": k, "value": v, "source": sources.get(k).copied().unwrap_or(Source::Default)})).collect();
        print_json(&json!(v));
    } else {
        if let Some(f) = &loaded.file {
            println!("# config file: {}", f.display());
        }
        for (k, v) in &flat {
            let src = sources.get(k).copied().unwrap_or(Source::Default);
            println!(
                "{k} = {v}    # {}",
                serde_json::to_value(src)
                    .ok()
                    .and_then(|s| s.as_str().map(str::to_string))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match v.as_object() {
        Some(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        None => out.push((prefix.to_string(), v.clone())),
    }
}
