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

/// Environment variables that are flags, not configuration keys.
const FLAG_VARS: [&str; 3] = ["SEGL_DATA_DIR", "SEGL_CONFIG", "SEGL_LOG"];

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
    /// Where the file transport writes SMS, email and letters (default: `outbox` in the
    /// data directory).
    pub outbox_dir: Option<PathBuf>,
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

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            issuer: None,
            database_url: None,
            log_format: "text".into(),
            log_level: "info".into(),
            max_body_bytes: 64 * 1024,
            argon2: Argon2Params::default(),
            policy: Policy::default(),
            outbox_dir: None,
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
    }
}
