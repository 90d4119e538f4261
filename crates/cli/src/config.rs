//! Configuration: defaults, then `segl.toml` (in the data directory or `--config`), then
//! `SEGL_*` environment variables (nested keys with `__`, e.g. `SEGL_POLICY__FLOW_TTL_SECS`),
//! then command-line flags. Unknown keys are errors; every value is validated at start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use segl_core::policy::Policy;
use segl_crypto::password::Argon2Params;
use serde::{Deserialize, Serialize};

use crate::CliError;

/// Environment variables that are flags, not configuration keys (`SEGL_APP_VAULT` is the
/// reference app's vault, read by `segl app`).
const FLAG_VARS: [&str; 4] = ["SEGL_DATA_DIR", "SEGL_CONFIG", "SEGL_LOG", "SEGL_APP_VAULT"];

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Public issuer URL; defaults to `http://<listen address>`.
    pub issuer: Option<String>,
    /// Database URL; defaults to the SQLite file in the data directory.
    pub database_url: Option<String>,
    /// PostgreSQL connections in segl's pool; default twice this host's cores, at least 4.
    /// Size it to the database server's cores, not to the load: requests queue for a
    /// connection rather than crowd the server.
    pub database_max_connections: Option<u32>,
    /// `text` or `json` logs.
    pub log_format: String,
    /// Log filter (tracing's env-filter syntax), overridden by `SEGL_LOG`.
    pub log_level: String,
    /// Largest JSON request body, bytes.
    pub max_body_bytes: usize,
    /// Password hashing parameters.
    pub argon2: Argon2Params,
    /// Limits and lifetimes.
    pub policy: Policy,
    /// Messages to people: transports, retries.
    pub notify: NotifyConfig,
    /// The CA: key store, names, lifetimes.
    pub pki: PkiConfig,
    /// The signing API's limits.
    pub sign: segl_core::sign::SignPolicy,
}

/// `[pki]`: segl's CA.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    /// Where CA and person keys live: `software` (sealed under the master key) or `pkcs11`.
    pub key_store: String,
    /// The software store's master key, 32 bytes in base64 (best set as
    /// `SEGL_PKI__MASTER_KEY`); default: the file `ca-master.key` in the data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
    /// The PKCS#11 module.
    pub pkcs11_module: PathBuf,
    /// The PKCS#11 token's label.
    pub pkcs11_token: String,
    /// The token's user PIN (set it as `SEGL_PKI__PKCS11_PIN`, not in the file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11_pin: Option<String>,
    /// Published base URL of certificates, CRLs and OCSP; default: the issuer.
    pub base_url: Option<String>,
    /// The organisation named in CA certificates.
    pub organization: String,
    /// The certificate policy OID in every certificate below the root.
    pub policy_oid: String,
    /// Lifetime of a person certificate, days.
    pub person_cert_days: i64,
    /// A CRL's validity (nextUpdate − thisUpdate), seconds; a new CRL is made at half of it
    /// and on every revocation.
    pub crl_validity_secs: i64,
    /// A pre-signed OCSP response's validity, seconds; it is signed again at half of it.
    pub ocsp_validity_secs: i64,
}

impl Default for PkiConfig {
    fn default() -> Self {
        PkiConfig {
            key_store: "software".into(),
            master_key: None,
            pkcs11_module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            pkcs11_token: "segl".into(),
            pkcs11_pin: None,
            base_url: None,
            organization: "segl".into(),
            policy_oid: segl_pki::profile::DEFAULT_POLICY_OID.into(),
            person_cert_days: 4 * 365,
            crl_validity_secs: 24 * 3600,
            ocsp_validity_secs: 3600,
        }
    }
}

impl PkiConfig {
    fn validate(&self) -> Result<(), CliError> {
        let bad = |m: &str| Err(CliError::Input(format!("pki.{m}")));
        if !matches!(self.key_store.as_str(), "software" | "pkcs11") {
            return bad("key_store must be 'software' or 'pkcs11'");
        }
        if self.key_store == "pkcs11" && self.pkcs11_pin.is_none() {
            return bad(
                "pkcs11_pin is needed with key_store = 'pkcs11' (set SEGL_PKI__PKCS11_PIN)",
            );
        }
        if let Some(u) = &self.base_url {
            validate_issuer(u).map_err(|e| CliError::Input(format!("pki.base_url: {e}")))?;
        }
        if segl_pki::profile::policy_oid(&self.policy_oid).is_err() {
            return bad("policy_oid is not a dotted object identifier");
        }
        if !(1..=20 * 365).contains(&self.person_cert_days) {
            return bad("person_cert_days must be between 1 and 7300");
        }
        if !(300..=30 * 86400).contains(&self.crl_validity_secs) {
            return bad("crl_validity_secs must be between 300 and 2592000");
        }
        if !(60..=7 * 86400).contains(&self.ocsp_validity_secs) {
            return bad("ocsp_validity_secs must be between 60 and 604800");
        }
        Ok(())
    }
}

/// `[notify]`: how SMS, email and letters reach people.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Email transport: `file` (development) or `smtp`.
    pub email: String,
    /// SMS transport: `file` (development) or `http` (`[notify.sms_gateway]`).
    pub sms: String,
    /// Letter transport: `file`, a PDF per letter in `print_dir`.
    pub letter: String,
    /// Where the file transport writes SMS and email; default `outbox` in the data
    /// directory.
    pub dir: Option<PathBuf>,
    /// Where letters are written for printing; default `print` in the data directory.
    pub print_dir: Option<PathBuf>,
    /// Attempts before a message is given up.
    pub max_attempts: i64,
    /// The first pause before a retry, seconds; each further one doubles (up to an hour).
    pub backoff_base_secs: i64,
    /// The SMTP server, for `email = "smtp"`.
    pub smtp: SmtpConfig,
    /// The HTTP SMS gateway, for `sms = "http"`.
    pub sms_gateway: SmsGatewayConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        let retry = segl_server::notify::Retry::default();
        NotifyConfig {
            email: "file".into(),
            sms: "file".into(),
            letter: "file".into(),
            dir: None,
            print_dir: None,
            max_attempts: retry.max_attempts,
            backoff_base_secs: retry.backoff_base_secs,
            smtp: SmtpConfig::default(),
            sms_gateway: SmsGatewayConfig::default(),
        }
    }
}

/// `[notify.smtp]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: Option<String>,
    /// Server port.
    pub port: u16,
    /// `starttls` (required), `tls` (from the first byte) or `none` (loopback hosts only).
    pub tls: String,
    /// Login name, if the server wants one.
    pub username: Option<String>,
    /// Login password (set it as `SEGL_NOTIFY__SMTP__PASSWORD`, not in the file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The From address, e.g. `segl <noreply@eid.example.no>`.
    pub from: Option<String>,
    /// Timeout of each SMTP command, seconds.
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: None,
            port: 587,
            tls: "starttls".into(),
            username: None,
            password: None,
            from: None,
            timeout_secs: 20,
        }
    }
}

/// `[notify.sms_gateway]`: a generic HTTP SMS gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsGatewayConfig {
    /// Where to POST `{to, from, text}`: https, or http to a loopback host.
    pub url: Option<String>,
    /// The `Authorization` header's value (set it as
    /// `SEGL_NOTIFY__SMS_GATEWAY__AUTHORIZATION`, not in the file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// The sender shown on the phone: up to 11 letters and digits, or a number.
    pub sender: String,
    /// Timeout of one request, seconds.
    pub timeout_secs: u64,
}

impl Default for SmsGatewayConfig {
    fn default() -> Self {
        SmsGatewayConfig {
            url: None,
            authorization: None,
            sender: "segl".into(),
            timeout_secs: 10,
        }
    }
}

/// Whether `host` is this machine (a name or address that never leaves it).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl NotifyConfig {
    /// Parses the section into the server's settings, with `data_dir` for the default
    /// folders; the message names the key.
    pub fn settings(&self, data_dir: &Path) -> Result<segl_server::notify::Settings, CliError> {
        use segl_server::notify::{EmailVia, Retry, Settings, SmsVia};
        let bad = |m: String| CliError::Input(format!("notify.{m}"));
        let email = match self.email.as_str() {
            "file" => EmailVia::File,
            "smtp" => EmailVia::Smtp(self.smtp.settings().map_err(bad)?),
            other => {
                return Err(bad(format!(
                    "email must be 'file' or 'smtp', not '{other}'"
                )));
            }
        };
        let sms = match self.sms.as_str() {
            "file" => SmsVia::File,
            "http" => SmsVia::Http(self.sms_gateway.settings().map_err(bad)?),
            other => return Err(bad(format!("sms must be 'file' or 'http', not '{other}'"))),
        };
        if self.letter != "file" {
            return Err(bad(format!(
                "letter must be 'file' (a PDF per letter in print_dir), not '{}'",
                self.letter
            )));
        }
        for (key, dir) in [("dir", &self.dir), ("print_dir", &self.print_dir)] {
            if dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
                return Err(bad(format!("{key} must not be empty")));
            }
        }
        if !(1..=50).contains(&self.max_attempts) {
            return Err(bad("max_attempts must be between 1 and 50".into()));
        }
        if !(1..=3600).contains(&self.backoff_base_secs) {
            return Err(bad("backoff_base_secs must be between 1 and 3600".into()));
        }
        // Unused settings of a transport not chosen are still checked when present: a
        // typo should not wait until someone switches the transport on.
        if self.email != "smtp" && self.smtp.host.is_some() {
            self.smtp.settings().map_err(bad)?;
        }
        if self.sms != "http" && self.sms_gateway.url.is_some() {
            self.sms_gateway.settings().map_err(bad)?;
        }
        Ok(Settings {
            email,
            sms,
            file_dir: self.dir.clone().unwrap_or_else(|| data_dir.join("outbox")),
            print_dir: self
                .print_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("print")),
            retry: Retry {
                max_attempts: self.max_attempts,
                backoff_base_secs: self.backoff_base_secs,
            },
        })
    }
}

impl SmtpConfig {
    fn settings(&self) -> Result<segl_server::notify::smtp::SmtpSettings, String> {
        use segl_server::notify::smtp::{SmtpSettings, SmtpTls, parse_mailbox};
        let host = self
            .host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or("smtp.host is needed with email = 'smtp'")?;
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(format!("smtp.host '{host}' is not a host name"));
        }
        let tls = SmtpTls::parse(&self.tls).ok_or_else(|| {
            format!(
                "smtp.tls must be 'starttls', 'tls' or 'none', not '{}'",
                self.tls
            )
        })?;
        if tls == SmtpTls::None && !is_loopback(host) {
            return Err(format!(
                "smtp.tls = 'none' is allowed only for a server on this host (localhost, 127.0.0.1, ::1), not '{host}': messages hold one-time codes"
            ));
        }
        if self.port == 0 {
            return Err("smtp.port must be between 1 and 65535".into());
        }
        let credentials = match (&self.username, &self.password) {
            (None, None) => None,
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
                if tls == SmtpTls::None {
                    return Err(
                        "smtp.username needs tls = 'starttls' or 'tls': a password is never sent in clear"
                            .into(),
                    );
                }
                Some((u.clone(), p.clone()))
            }
            (Some(_), None) => {
                return Err(
                    "smtp.password is needed with smtp.username (set SEGL_NOTIFY__SMTP__PASSWORD)"
                        .into(),
                );
            }
            (None, Some(_)) => return Err("smtp.username is needed with smtp.password".into()),
            _ => return Err("smtp.username and smtp.password must not be empty".into()),
        };
        let from = self
            .from
            .as_deref()
            .ok_or("smtp.from is needed with email = 'smtp'")?;
        let from = parse_mailbox(from).map_err(|e| format!("smtp.from: {e}"))?;
        if !(1..=60).contains(&self.timeout_secs) {
            return Err("smtp.timeout_secs must be between 1 and 60".into());
        }
        Ok(SmtpSettings {
            host: host.to_string(),
            port: self.port,
            tls,
            credentials,
            from,
            timeout: std::time::Duration::from_secs(self.timeout_secs),
        })
    }
}

impl SmsGatewayConfig {
    fn settings(&self) -> Result<segl_server::notify::sms_gateway::GatewaySettings, String> {
        let raw = self
            .url
            .as_deref()
            .ok_or("sms_gateway.url is needed with sms = 'http'")?;
        let url = url::Url::parse(raw).map_err(|e| format!("sms_gateway.url '{raw}': {e}"))?;
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(format!(
                    "sms_gateway.url must be https (http only to this host): '{raw}'"
                ));
            }
            _ => return Err(format!("sms_gateway.url must be an https URL: '{raw}'")),
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(
                "sms_gateway.url must carry no credentials or fragment (use sms_gateway.authorization)"
                    .into(),
            );
        }
        if let Some(a) = &self.authorization
            && (a.trim().is_empty() || a.chars().any(|c| c.is_control()))
        {
            return Err("sms_gateway.authorization must be a non-empty header value".into());
        }
        let s = &self.sender;
        let alnum = (1..=11).contains(&s.chars().count())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
            && s.chars().any(|c| c.is_ascii_alphabetic());
        let number = s
            .strip_prefix('+')
            .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
        if !alnum && !number {
            return Err(format!(
                "sms_gateway.sender '{s}' must be 1 to 11 letters and digits, or a number like +4791234567"
            ));
        }
        if !(1..=60).contains(&self.timeout_secs) {
            return Err("sms_gateway.timeout_secs must be between 1 and 60".into());
        }
        Ok(segl_server::notify::sms_gateway::GatewaySettings {
            url,
            authorization: self.authorization.clone(),
            sender: s.clone(),
            timeout: std::time::Duration::from_secs(self.timeout_secs),
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            issuer: None,
            database_url: None,
            database_max_connections: None,
            log_format: "text".into(),
            log_level: "info".into(),
            max_body_bytes: 64 * 1024,
            argon2: Argon2Params::default(),
            policy: Policy::default(),
            notify: NotifyConfig::default(),
            pki: PkiConfig::default(),
            sign: segl_core::sign::SignPolicy::default(),
        }
    }
}

/// Where each value came from, for `segl config show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Built-in default.
    Default,
    /// The config file.
    File,
    /// A `SEGL_*` environment variable.
    Env,
    /// A command-line flag.
    Flag,
}

/// The loaded configuration and the sources of its values.
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Source per dotted key.
    pub sources: HashMap<String, Source>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

fn env_pairs() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("SEGL_")
                && !FLAG_VARS.contains(&k.as_str())
                && !k.starts_with("SEGL_TEST_")
        })
        .collect()
}

fn env_key(var: &str) -> String {
    var.trim_start_matches("SEGL_")
        .to_ascii_lowercase()
        .replace("__", ".")
}

/// Loads defaults, file and environment.
pub fn load(data_dir: &Path, explicit: Option<&Path>) -> Result<Loaded, CliError> {
    let file = match explicit {
        Some(p) => {
            if !p.is_file() {
                return Err(CliError::Input(format!(
                    "config file {} does not exist",
                    p.display()
                )));
            }
            Some(p.to_path_buf())
        }
        None => Some(data_dir.join("segl.toml")).filter(|p| p.is_file()),
    };
    let mut builder = config::Config::builder().add_source(
        config::Config::try_from(&Config::default())
            .map_err(|e| CliError::Failure(e.to_string()))?,
    );
    let mut file_keys = Vec::new();
    if let Some(f) = &file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| CliError::Input(format!("cannot read {}: {e}", f.display())))?;
        let table: toml_value::Table = toml_value::parse(&text)
            .map_err(|e| CliError::Input(format!("{}: {e}", f.display())))?;
        file_keys = toml_value::leaf_keys(&table);
        builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
    }
    let env: HashMap<String, String> = env_pairs().into_iter().collect();
    builder = builder.add_source(
        config::Environment::with_prefix("SEGL")
            .separator("__")
            .prefix_separator("_")
            .try_parsing(true)
            .source(Some(env.clone())),
    );
    let config: Config = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| CliError::Input(format!("configuration: {e}")))?;
    let mut sources = HashMap::new();
    for k in file_keys {
        sources.insert(k, Source::File);
    }
    for k in env.keys() {
        sources.insert(env_key(k), Source::Env);
    }
    Ok(Loaded {
        config,
        sources,
        file,
    })
}

impl Config {
    /// Checks every value; the message names the key.
    pub fn validate(&self) -> Result<(), CliError> {
        self.listen.parse::<SocketAddr>().map_err(|_| {
            CliError::Input(format!(
                "listen: '{}' is not an address like 127.0.0.1:8080",
                self.listen
            ))
        })?;
        if let Some(iss) = &self.issuer {
            validate_issuer(iss)?;
        }
        if let Some(n) = self.database_max_connections
            && !(1..=1000).contains(&n)
        {
            return Err(CliError::Input(
                "database_max_connections must be between 1 and 1000".into(),
            ));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(CliError::Input(
                "log_format must be 'text' or 'json'".into(),
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(CliError::Input(
                "max_body_bytes must be between 1024 and 16777216".into(),
            ));
        }
        self.policy
            .validate()
            .map_err(|e| CliError::Input(format!("policy: {e}")))?;
        segl_crypto::password::PasswordHasher::new(self.argon2)
            .map_err(|e| CliError::Input(format!("argon2: {e}")))?;
        self.sign.validate().map_err(CliError::Input)?;
        self.notify.settings(Path::new("."))?;
        self.pki.validate()
    }
}

/// An issuer is an http(s) URL without query, fragment or trailing slash.
pub fn validate_issuer(iss: &str) -> Result<(), CliError> {
    let url = url::Url::parse(iss).map_err(|e| CliError::Input(format!("issuer '{iss}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
        || iss.ends_with('/')
    {
        return Err(CliError::Input(format!(
            "issuer '{iss}' must be an http(s) URL without query, fragment or trailing slash"
        )));
    }
    Ok(())
}

/// The smallest TOML reading we need to know which keys a file sets.
mod toml_value {
    pub type Table = config::Map<String, config::Value>;

    pub fn parse(text: &str) -> Result<Table, String> {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<Table>())
            .map_err(|e| e.to_string())
    }

    pub fn leaf_keys(t: &Table) -> Vec<String> {
        let mut out = Vec::new();
        walk("", t, &mut out);
        out
    }

    fn walk(prefix: &str, t: &Table, out: &mut Vec<String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v.clone().into_table() {
                Ok(sub) => walk(&key, &sub, out),
                Err(_) => out.push(key),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn file_values_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("segl.toml"),
            "listen = \"127.0.0.1:9999\"\n[policy]\nflow_ttl_secs = 5\n",
        )
        .unwrap();
        let l = load(dir.path(), None).unwrap();
        assert_eq!(l.config.listen, "127.0.0.1:9999");
        assert_eq!(l.config.policy.flow_ttl_secs, 5);
        assert_eq!(l.sources.get("policy.flow_ttl_secs"), Some(&Source::File));

        std::fs::write(dir.path().join("segl.toml"), "lissen = \"x\"\n").unwrap();
        let err = load(dir.path(), None).err().unwrap();
        assert!(err.to_string().contains("lissen"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let c = Config {
            issuer: Some("https://example.org/".into()),
            ..Config::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("trailing slash")
        );
        let c = Config {
            listen: "nowhere".into(),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("listen"));
        let c = Config {
            database_max_connections: Some(0),
            ..Config::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("database_max_connections must be between 1 and 1000")
        );
    }

    #[test]
    fn pool_size_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let l = load(dir.path(), None).unwrap();
        assert_eq!(l.config.database_max_connections, None);
        std::fs::write(
            dir.path().join("segl.toml"),
            "database_max_connections = 6\n",
        )
        .unwrap();
        let l = load(dir.path(), None).unwrap();
        assert_eq!(l.config.database_max_connections, Some(6));
        assert_eq!(
            l.sources.get("database_max_connections"),
            Some(&Source::File)
        );
        l.config.validate().unwrap();
    }
    #[test]
    fn notify_section_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("segl.toml"),
            "[notify]\nemail = \"smtp\"\n[notify.smtp]\nhost = \"localhost\"\ntls = \"none\"\nport = 2525\nfrom = \"segl <noreply@example.no>\"\n",
        )
        .unwrap();
        let l = load(dir.path(), None).unwrap();
        let s = l.config.notify.settings(dir.path()).unwrap();
        assert!(matches!(s.email, segl_server::notify::EmailVia::Smtp(ref m) if m.port == 2525));
        assert_eq!(s.print_dir, dir.path().join("print"));
        assert_eq!(s.file_dir, dir.path().join("outbox"));
        assert_eq!(l.sources.get("notify.smtp.port"), Some(&Source::File));
    }

    #[test]
    fn bad_notify_values_are_named() {
        let check = |f: &dyn Fn(&mut NotifyConfig), needle: &str| {
            let mut c = Config::default();
            f(&mut c.notify);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        };
        check(&|n| n.email = "pigeon".into(), "notify.email");
        check(&|n| n.sms = "smtp".into(), "notify.sms");
        check(&|n| n.letter = "fax".into(), "notify.letter");
        check(&|n| n.max_attempts = 0, "notify.max_attempts");
        check(&|n| n.backoff_base_secs = 0, "notify.backoff_base_secs");
        check(&|n| n.email = "smtp".into(), "notify.smtp.host");
        let smtp = |n: &mut NotifyConfig| {
            n.email = "smtp".into();
            n.smtp.host = Some("mail.example.no".into());
            n.smtp.from = Some("noreply@example.no".into());
        };
        check(
            &|n| {
                smtp(n);
                n.smtp.tls = "none".into();
            },
            "notify.smtp.tls = 'none' is allowed only",
        );
        check(
            &|n| {
                smtp(n);
                n.smtp.tls = "ssl".into();
            },
            "notify.smtp.tls must be",
        );
        check(
            &|n| {
                smtp(n);
                n.smtp.from = Some("nobody".into());
            },
            "notify.smtp.from",
        );
        check(
            &|n| {
                smtp(n);
                n.smtp.username = Some("segl".into());
            },
            "SEGL_NOTIFY__SMTP__PASSWORD",
        );
        let http = |n: &mut NotifyConfig| {
            n.sms = "http".into();
            n.sms_gateway.url = Some("https://sms.example.no/send".into());
        };
        check(
            &|n| n.sms = "http".into(),
            "notify.sms_gateway.url is needed",
        );
        check(
            &|n| {
                http(n);
                n.sms_gateway.url = Some("http://sms.example.no/send".into());
            },
            "must be https",
        );
        check(
            &|n| {
                http(n);
                n.sms_gateway.sender = "a very long sender".into();
            },
            "notify.sms_gateway.sender",
        );
        check(
            &|n| {
                http(n);
                n.sms_gateway.timeout_secs = 0;
            },
            "notify.sms_gateway.timeout_secs",
        );
        let mut c = Config::default();
        smtp(&mut c.notify);
        http(&mut c.notify);
        c.validate().unwrap();
        c.notify.sms_gateway.url = Some("http://127.0.0.1:9/send".into());
        c.validate().unwrap();
    }
}
