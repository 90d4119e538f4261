//! `segl ca …` and `segl cert …`: the CA hierarchy and the certificates it issued.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use segl_crypto::keystore::{KeyStore, Pkcs11KeyStore, SoftwareKeyStore};
use segl_crypto::seal::SealKey;
use segl_pki::RevocationReason;
use segl_pki::profile;
use segl_server::ca::{Pki, PkiSettings};
use segl_store::{persons, pki as rows};
use serde_json::json;

use crate::commands::{Opened, open, print_json};
use crate::config::Config;
use crate::{CliError, Global};

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failure(e.to_string())
}

fn now() -> i64 {
    segl_server::system_now()
}

/// Opens the configured key store and the CA's settings.
pub fn open_pki(cfg: &Config, dir: &Path, issuer: &str) -> Result<Pki, CliError> {
    let p = &cfg.pki;
    let keys: Arc<dyn KeyStore> = match p.key_store.as_str() {
        "pkcs11" => {
            let pin = p.pkcs11_pin.as_deref().unwrap_or_default();
            Arc::new(
                Pkcs11KeyStore::open(&p.pkcs11_module, &p.pkcs11_token, pin)
                    .map_err(|e| fail(format!("PKCS#11 key store: {e}")))?,
            )
        }
        _ => {
            let master = match &p.master_key {
                Some(b64) => {
                    let bytes = data_encoding::BASE64
                        .decode(b64.trim().as_bytes())
                        .map_err(|_| CliError::Input("pki.master_key is not base64".into()))?;
                    SealKey::from_bytes(&bytes)
                        .map_err(|e| CliError::Input(format!("pki.master_key: {e}")))?
                }
                None => SealKey::load_or_create(&dir.join("ca-master.key"))
                    .map_err(|e| fail(format!("CA master key: {e}")))?,
            };
            Arc::new(SoftwareKeyStore::new(master))
        }
    };
    let mut settings = PkiSettings::new(p.base_url.as_deref().unwrap_or(issuer));
    settings.urls.policy = p.policy_oid.clone();
    settings.organization = p.organization.clone();
    settings.person_cert_days = p.person_cert_days;
    settings.crl_validity_secs = p.crl_validity_secs;
    settings.ocsp_validity_secs = p.ocsp_validity_secs;
    Ok(Pki {
        keys,
        settings: Arc::new(settings),
    })
}

/// Issues the person's certificate if their eID just became active; the serial if so.
pub async fn certify(o: &Opened, person_id: &str) -> Result<Option<String>, CliError> {
    let cert = o
        .pki
        .ensure_person_certificate(&o.store, person_id, now())
        .await
        .map_err(|e| fail(format!("issuing the certificate: {e}")))?;
    Ok(cert.map(|c| c.serial))
}

/// `segl ca …`
#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Create what is missing of the hierarchy (root, persons CA, OCSP signer) and list it.
    /// Every command does this on a new data directory; this one says what it did.
    Init,
    /// List the CAs.
    List,
    /// Print a CA certificate as PEM (root, persons, persons-ocsp).
    Export {
        /// The CA's name.
        name: String,
    },
    /// A root kept offline, in two steps on a new data directory: `--root FILE` stores the
    /// root's certificate and prints the persons CA's certificate request (PKCS#10, PEM) for
    /// the root to sign (`segl ca sign-request` where the root is); `--ca persons --cert
    /// FILE` imports the signed certificate.
    Import {
        /// The root's certificate (PEM).
        #[arg(long, conflicts_with_all = ["ca", "cert"])]
        root: Option<std::path::PathBuf>,
        /// The CA whose certificate is imported (persons).
        #[arg(long, requires = "cert")]
        ca: Option<String>,
        /// Its certificate (PEM), signed by the root.
        #[arg(long, requires = "ca")]
        cert: Option<std::path::PathBuf>,
    },
    /// Where the root is: sign a persons CA's certificate request (PEM) and print the certificate.
    SignRequest {
        /// The request (PEM), from `segl ca import --root`.
        #[arg(long)]
        request: std::path::PathBuf,
    },
}

/// `segl cert …`
#[derive(Subcommand, Debug)]
pub enum CertCmd {
    /// List certificates with serial, status and PEM.
    List {
        /// Only this person's.
        #[arg(long)]
        nin: Option<String>,
    },
    /// Issue a certificate for a person whose eID is active (renewal when one exists).
    Issue {
        /// National identity number.
        #[arg(long)]
        nin: String,
    },
    /// Revoke a certificate; the CRL is regenerated and OCSP answers `revoked` within seconds.
    Revoke {
        /// Serial (hex, as `segl cert list` shows it).
        #[arg(long)]
        serial: String,
        /// unspecified, key-compromise, affiliation-changed, superseded,
        /// cessation-of-operation, certificate-hold, privilege-withdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
}

fn read_pem(path: &Path, label: &str) -> Result<Vec<u8>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
    let (found, der) = der::pem::decode_vec(text.as_bytes())
        .map_err(|e| CliError::Input(format!("{}: not PEM: {e}", path.display())))?;
    if found != label {
        return Err(CliError::Input(format!(
            "{}: expected a {label}, found {found}",
            path.display()
        )));
    }
    Ok(der)
}

fn api(e: segl_server::error::ApiError) -> CliError {
    match e {
        segl_server::error::ApiError::Problem { detail, .. } => CliError::Input(detail),
        other => fail(other),
    }
}

pub async fn ca(g: &Global, cmd: CaCmd) -> Result<ExitCode, CliError> {
    let importing = matches!(cmd, CaCmd::Import { .. });
    let o = crate::commands::open_with(g, !importing).await?;
    match cmd {
        CaCmd::Import {
            root: Some(root), ..
        } => {
            let der = read_pem(&root, "CERTIFICATE")?;
            let csr = o
                .pki
                .import_root(&o.store, &der, now())
                .await
                .map_err(api)?;
            let pem =
                der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &csr)
                    .map_err(fail)?;
            if g.json {
                print_json(&json!({ "request": pem }));
            } else {
                print!("{pem}");
            }
            Ok(ExitCode::SUCCESS)
        }
        CaCmd::Import {
            ca: Some(name),
            cert: Some(cert),
            ..
        } => {
            if name != segl_server::ca::PERSONS {
                return Err(CliError::Input(format!(
                    "only the persons CA is imported, not '{name}'"
                )));
            }
            let der = read_pem(&cert, "CERTIFICATE")?;
            o.pki
                .import_issuing(&o.store, &der, now())
                .await
                .map_err(api)?;
            if !g.json {
                println!("imported the persons CA; the OCSP signer and the CRL are made");
            }
            list_cas(g, &o).await
        }
        CaCmd::Import { .. } => Err(CliError::Input(
            "give --root FILE, or --ca persons --cert FILE".into(),
        )),
        CaCmd::SignRequest { request } => {
            let der = read_pem(&request, "CERTIFICATE REQUEST")?;
            let cert = o
                .pki
                .sign_request(&o.store, &der, now())
                .await
                .map_err(api)?;
            print!("{}", profile::to_pem(&cert).map_err(fail)?);
            Ok(ExitCode::SUCCESS)
        }
        CaCmd::Init => {
            let created = o
                .pki
                .ensure_hierarchy(&o.store, now())
                .await
                .map_err(fail)?;
            if !g.json {
                if created.is_empty() {
                    println!("the CA hierarchy exists; nothing created");
                } else {
                    println!("created: {}", created.join(", "));
                }
            }
            list_cas(g, &o).await
        }
        CaCmd::List => list_cas(g, &o).await,
        CaCmd::Export { name } => {
            let mut c = o.store.conn().await.map_err(fail)?;
            let ca = rows::ca(&mut *c, &name)
                .await
                .map_err(fail)?
                .ok_or_else(|| CliError::Input(format!("no CA named '{name}'")))?;
            print!("{}", profile::to_pem(&ca.cert_der).map_err(fail)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list_cas(g: &Global, o: &Opened) -> Result<ExitCode, CliError> {
    let mut c = o.store.conn().await.map_err(fail)?;
    let mut out = Vec::new();
    for ca in rows::cas(&mut *c).await.map_err(fail)? {
        let s = profile::summary(&ca.cert_der).map_err(fail)?;
        out.push(json!({
            "name": ca.name,
            "subject": s.subject,
            "serial": s.serial_hex,
            "not_after": s.not_after.unix_timestamp(),
            "key_store": ca.key_store,
            "pem": profile::to_pem(&ca.cert_der).map_err(fail)?,
        }));
        if !g.json {
            println!(
                "{:<14} {}  (until {}, key: {})",
                ca.name,
                s.subject,
                s.not_after.date(),
                ca.key_store
            );
        }
    }
    if g.json {
        print_json(&json!(out));
    }
    Ok(ExitCode::SUCCESS)
}

fn status(c: &rows::Certificate, now: i64) -> &'static str {
    if c.revoked_at.is_some() {
        "revoked"
    } else if c.not_after <= now {
        "expired"
    } else {
        "valid"
    }
}

pub async fn cert(g: &Global, cmd: CertCmd) -> Result<ExitCode, CliError> {
    let o = open(g).await?;
    match cmd {
        CertCmd::List { nin } => {
            let mut c = o.store.conn().await.map_err(fail)?;
            let person_id = match nin {
                Some(n) => Some(
                    persons::by_nin(&mut *c, &n)
                        .await
                        .map_err(fail)?
                        .ok_or_else(|| {
                            CliError::Input("no person with that national identity number".into())
                        })?
                        .id,
                ),
                None => None,
            };
            let certs = rows::certificates(&mut *c, person_id.as_deref())
                .await
                .map_err(fail)?;
            let t = now();
            if g.json {
                let mut out = Vec::new();
                for cert in &certs {
                    let s = profile::summary(&cert.cert_der).map_err(fail)?;
                    let mut v = serde_json::to_value(cert).map_err(fail)?;
                    v["status"] = json!(status(cert, t));
                    v["subject"] = json!(s.subject);
                    v["pem"] = json!(profile::to_pem(&cert.cert_der).map_err(fail)?);
                    out.push(v);
                }
                print_json(&json!(out));
            } else {
                for cert in &certs {
                    let s = profile::summary(&cert.cert_der).map_err(fail)?;
                    println!(
                        "{}  {:<8} {}  until {}",
                        cert.serial,
                        status(cert, t),
                        s.subject,
                        s.not_after.date()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CertCmd::Issue { nin } => {
            let mut tx = o.store.begin().await.map_err(fail)?;
            let person = persons::by_nin(&mut tx, &nin)
                .await
                .map_err(fail)?
                .ok_or_else(|| {
                    CliError::Input("no person with that national identity number".into())
                })?;
            if !segl_server::ca::eid_active(&mut tx, &person.id)
                .await
                .map_err(fail)?
            {
                return Err(CliError::Input(
                    "this person's eID is not active (a password and a code device or an app are needed)".into(),
                ));
            }
            let cert = o
                .pki
                .issue_person(&mut tx, &person, now())
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            if g.json {
                print_json(
                    &json!({ "serial": cert.serial, "pem": profile::to_pem(&cert.cert_der).map_err(fail)? }),
                );
            } else {
                println!("issued certificate {}", cert.serial);
            }
            Ok(ExitCode::SUCCESS)
        }
        CertCmd::Revoke { serial, reason } => {
            let reason = RevocationReason::parse(&reason).ok_or_else(|| {
                CliError::Input(format!(
                    "unknown reason '{reason}'; one of: {}",
                    RevocationReason::ALL.map(|r| r.as_str()).join(", ")
                ))
            })?;
            if reason == RevocationReason::CaCompromise {
                return Err(CliError::Input(
                    "ca-compromise applies to CA certificates, not to a person's".into(),
                ));
            }
            let serial = serial.trim().to_ascii_lowercase();
            let mut c = o.store.conn().await.map_err(fail)?;
            let known = rows::certificate(&mut *c, &serial).await.map_err(fail)?;
            drop(c);
            match known {
                None => {
                    return Err(CliError::Input(format!(
                        "no certificate with serial {serial}"
                    )));
                }
                Some(cert) if cert.revoked_at.is_some() => {
                    return Err(CliError::Input(format!(
                        "certificate {serial} is already revoked"
                    )));
                }
                Some(_) => {}
            }
            if !o
                .pki
                .revoke(&o.store, &serial, reason, "cli", now())
                .await
                .map_err(fail)?
            {
                return Err(CliError::Input(format!(
                    "certificate {serial} is already revoked"
                )));
            }
            if g.json {
                print_json(
                    &json!({ "serial": serial, "status": "revoked", "reason": reason.as_str() }),
                );
            } else {
                println!("revoked {serial} ({})", reason.as_str());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `segl verify`: a detached CMS signature, or the signatures in a PDF (PAdES), each with
/// its chain and its revocation status.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The signature: DER CMS ContentInfo (SignedData, detached).
    #[arg(long, required_unless_present = "pdf", conflicts_with = "pdf")]
    cms: Option<std::path::PathBuf>,
    /// The signed content.
    #[arg(
        long,
        conflicts_with_all = ["digest", "pdf"],
        required_unless_present_any = ["digest", "pdf"]
    )]
    content: Option<std::path::PathBuf>,
    /// The content's SHA-256, 64 hex digits, instead of the content.
    #[arg(long, conflicts_with = "pdf")]
    digest: Option<String>,
    /// A signed PDF: every signature in it (PAdES), instead of --cms. Valid when each
    /// signature is and the last one covers the whole file.
    #[arg(long)]
    pdf: Option<std::path::PathBuf>,
    /// A trusted root certificate (PEM or DER); repeat for more. Default: this segl's root.
    #[arg(long = "ca")]
    roots: Vec<std::path::PathBuf>,
}

/// The content's SHA-256: from `--digest` or by reading `--content`.
fn content_digest(args: &VerifyArgs) -> Result<[u8; 32], CliError> {
    use sha2::Digest;
    if let Some(hex) = &args.digest {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.trim().as_bytes())
            .map_err(|_| CliError::Input("--digest is not hex".into()))?;
        return <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            CliError::Input(format!(
                "--digest is {} bytes; a SHA-256 is 32 (64 hex digits)",
                bytes.len()
            ))
        });
    }
    let Some(path) = &args.content else {
        return Err(CliError::Input(
            "give --content FILE or --digest HEX".into(),
        ));
    };
    let mut file = std::fs::File::open(path)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match std::io::Read::read(&mut file, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(CliError::Input(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        match buf.get(..n) {
            Some([]) | None => break,
            Some(chunk) => hasher.update(chunk),
        }
    }
    Ok(hasher.finalize().into())
}

/// A certificate file, PEM or DER.
fn read_certificate(path: &Path) -> Result<Vec<u8>, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
    if bytes.first() != Some(&0x30) {
        return read_pem(path, "CERTIFICATE");
    }
    profile::summary(&bytes)
        .map_err(|e| CliError::Input(format!("{}: not a DER certificate: {e}", path.display())))?;
    Ok(bytes)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

type Verified = Result<segl_pki::verify::Report, segl_pki::verify::VerifyError>;

pub async fn verify(g: &Global, args: VerifyArgs) -> Result<ExitCode, CliError> {
    // Read the input before opening the store: bad input is exit 2 whatever the store.
    let input = match (&args.pdf, &args.cms) {
        (Some(pdf), _) => Input::Pdf {
            bytes: std::fs::read(pdf)
                .map_err(|e| CliError::Input(format!("cannot read {}: {e}", pdf.display())))?,
            path: pdf.display().to_string(),
        },
        (None, Some(cms)) => Input::Cms {
            digest: content_digest(&args)?,
            cms: std::fs::read(cms)
                .map_err(|e| CliError::Input(format!("cannot read {}: {e}", cms.display())))?,
        },
        (None, None) => return Err(CliError::Input("give --cms FILE or --pdf FILE".into())),
    };
    let mut roots = Vec::new();
    for path in &args.roots {
        roots.push(read_certificate(path)?);
    }
    let signatures = match &input {
        Input::Pdf { bytes, path } => Some(pdf_signatures(bytes, path)?),
        Input::Cms { .. } => None,
    };
    // The store: for the default root, and for the revocation state of this segl's own
    // certificates. Not created just to verify against roots given on the command line.
    let opened = if roots.is_empty() || g.data_dir.exists() {
        Some(crate::commands::open_with(g, false).await?)
    } else {
        None
    };
    if roots.is_empty() {
        let Some(o) = &opened else {
            return Err(CliError::Input("give --ca ROOT.pem".into()));
        };
        let mut c = o.store.conn().await.map_err(fail)?;
        let root = rows::ca(&mut *c, "root")
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                CliError::Input("this segl has no root CA yet; give --ca ROOT.pem".into())
            })?;
        roots.push(root.cert_der);
    }
    let now_t = time::OffsetDateTime::now_utc();

    match (input, signatures) {
        (Input::Cms { cms, digest }, _) => {
            let mut result = segl_pki::verify::verify_cms(&cms, &digest, &roots, now_t);
            let source = own_records(&mut result, opened.as_ref(), now_t).await?;
            let signed = || {
                segl_pki::cms::verify_detached(&cms, &digest)
                    .ok()
                    .map(|s| (s.signer_cert_der, s.signing_time))
            };
            match result {
                Ok(report) => {
                    if g.json {
                        print_json(&report_json(&report, source));
                    } else {
                        println!("valid signature");
                        print_report(&report, source);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) if g.json => {
                    let mut out = json!({ "valid": false, "error": e.to_string() });
                    describe_signer(&mut out, signed());
                    print_json(&out);
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(CliError::Failure(format!(
                    "the signature is not valid: {e}"
                ))),
            }
        }
        (Input::Pdf { bytes, path }, Some(signatures)) => {
            verify_pdf(g, &bytes, &path, signatures, &roots, opened.as_ref(), now_t).await
        }
        (Input::Pdf { .. }, None) => Err(CliError::Failure("no signatures read".into())),
    }
}

/// What `segl verify` was given.
enum Input {
    Cms { cms: Vec<u8>, digest: [u8; 32] },
    Pdf { bytes: Vec<u8>, path: String },
}

/// The PDF's signatures: Ok(Err) for one whose dictionary is malformed (an invalid
/// signature, exit 1), Err for a PDF that is no PDF or carries no signature (exit 2).
fn pdf_signatures(
    bytes: &[u8],
    path: &str,
) -> Result<Result<Vec<segl_pki::pades::PdfSignature>, segl_pki::Error>, CliError> {
    match segl_pki::pades::signatures(bytes) {
        Ok(s) if s.is_empty() => Err(CliError::Input(format!(
            "{path}: the PDF carries no signature"
        ))),
        Ok(s) => Ok(Ok(s)),
        Err(e @ segl_pki::Error::PdfSignatureMalformed { .. }) => Ok(Err(e)),
        Err(e) => Err(CliError::Input(format!("{path}: {e}"))),
    }
}

/// `segl verify --pdf`: each signature as `--cms` checks one, over its byte range, and
/// what part of the file it covers.
async fn verify_pdf(
    g: &Global,
    bytes: &[u8],
    path: &str,
    signatures: Result<Vec<segl_pki::pades::PdfSignature>, segl_pki::Error>,
    roots: &[Vec<u8>],
    opened: Option<&Opened>,
    now_t: time::OffsetDateTime,
) -> Result<ExitCode, CliError> {
    let signatures = match signatures {
        Ok(s) => s,
        Err(e) if g.json => {
            print_json(&json!({ "valid": false, "error": e.to_string(), "signatures": [] }));
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            return Err(CliError::Failure(format!(
                "{path}: the PDF's signatures are not valid: {e}"
            )));
        }
    };
    let count = signatures.len();
    let mut first_error = None;
    let mut entries = Vec::with_capacity(count);
    for (i, sig) in signatures.iter().enumerate() {
        let mut result = segl_pki::verify::verify_pdf_signature(sig, roots, now_t);
        let source = own_records(&mut result, opened, now_t).await?;
        let label = format!(
            "signature {} of {count} (field {:?})",
            i + 1,
            sig.field_name
        );
        let covers = if sig.covers_whole_file {
            "the whole file".to_string()
        } else {
            format!(
                "the first {} of {} bytes: the file was changed after this signature by an incremental update",
                sig.signed_len,
                bytes.len()
            )
        };
        let mut entry = match &result {
            Ok(report) => report_json(report, source),
            Err(e) => {
                let mut out = json!({ "valid": false, "error": e.to_string() });
                let signed = segl_pki::cms::verify_detached_pades(
                    &sig.cms_der,
                    &sig.digest,
                    sig.signing_time,
                )
                .ok()
                .map(|s| (s.signer_cert_der, s.signing_time));
                describe_signer(&mut out, signed);
                out
            }
        };
        entry["field"] = json!(sig.field_name);
        entry["sub_filter"] = json!(sig.sub_filter);
        entry["byte_range"] = json!(sig.byte_range);
        entry["covers_whole_file"] = json!(sig.covers_whole_file);
        entry["signed_bytes"] = json!(sig.signed_len);
        if !g.json {
            println!("{label}");
            match &result {
                Ok(report) => {
                    println!("valid signature");
                    print_report(report, source);
                }
                Err(e) => println!("invalid signature: {e}"),
            }
            println!("covers:       {covers}");
            println!();
        }
        if let (Err(e), None) = (&result, &first_error) {
            first_error = Some(format!("{label} is not valid: {e}"));
        }
        entries.push(entry);
    }
    if first_error.is_none()
        && let Some(last) = signatures.last()
        && !last.covers_whole_file
    {
        first_error = Some(format!(
            "the last signature (field {:?}) covers only the first {} of {} bytes: what was added after it is signed by nobody",
            last.field_name,
            last.signed_len,
            bytes.len()
        ));
    }
    match first_error {
        None => {
            if g.json {
                print_json(&json!({ "valid": true, "signatures": entries }));
            } else {
                println!(
                    "valid PDF: {count} signature{}, the last covering the whole file",
                    if count == 1 { "" } else { "s" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(reason) if g.json => {
            print_json(&json!({ "valid": false, "error": reason, "signatures": entries }));
            Ok(ExitCode::from(1))
        }
        Some(reason) => Err(CliError::Failure(format!(
            "{path}: the PDF is not validly signed: {reason}"
        ))),
    }
}

/// No OCSP response in the signature: segl's own records answer for its own
/// certificates. Returns where the revocation status came from.
async fn own_records(
    result: &mut Verified,
    opened: Option<&Opened>,
    now_t: time::OffsetDateTime,
) -> Result<&'static str, CliError> {
    use segl_pki::verify::{Revocation, VerifyError};

    let (Ok(report), Some(o)) = (&mut *result, opened) else {
        return Ok("ocsp");
    };
    if report.revocation != Revocation::NotChecked {
        return Ok("ocsp");
    }
    let mut c = o.store.conn().await.map_err(fail)?;
    let own = rows::certificate(&mut *c, &report.serial_hex)
        .await
        .map_err(fail)?
        .filter(|row| row.cert_der == report.signer_cert_der);
    let Some(row) = own else {
        return Ok("ocsp");
    };
    let reason = row.reason.as_deref().and_then(RevocationReason::parse);
    match row
        .revoked_at
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
    {
        None => report.revocation = Revocation::Good { produced_at: now_t },
        Some(time) if time <= report.signing_time => {
            let signing_time = report.signing_time;
            *result = Err(VerifyError::Revoked {
                time,
                reason,
                signing_time,
            });
        }
        Some(time) => {
            report.revocation = Revocation::RevokedAfterSigning {
                time,
                reason,
                produced_at: now_t,
            }
        }
    }
    Ok("this segl's records")
}

/// A valid signature's report as JSON.
fn report_json(report: &segl_pki::verify::Report, source: &str) -> serde_json::Value {
    use segl_pki::verify::Revocation;
    let revocation = match &report.revocation {
        Revocation::Good { produced_at } => json!({
            "status": "good", "source": source, "produced_at": rfc3339(*produced_at),
        }),
        Revocation::RevokedAfterSigning {
            time,
            reason,
            produced_at,
        } => json!({
            "status": "revoked after signing", "source": source,
            "revoked_at": rfc3339(*time),
            "reason": reason.map(RevocationReason::as_str),
            "produced_at": rfc3339(*produced_at),
        }),
        _ => json!({ "status": "not checked" }),
    };
    json!({
        "valid": true,
        "signer": report.signer_subject,
        "serial": report.serial_hex,
        "signing_time": rfc3339(report.signing_time),
        "chain": report.chain,
        "revocation": revocation,
    })
}

/// A valid signature's report as text, after its "valid signature" line.
fn print_report(report: &segl_pki::verify::Report, source: &str) {
    use segl_pki::verify::Revocation;
    let status = match &report.revocation {
        Revocation::Good { produced_at } if source == "ocsp" => {
            format!("good (OCSP response of {})", rfc3339(*produced_at))
        }
        Revocation::Good { .. } => format!("good ({source})"),
        Revocation::RevokedAfterSigning { time, reason, .. } => format!(
            "revoked at {}, after signing ({}; {source})",
            rfc3339(*time),
            reason.map_or("no reason given", RevocationReason::as_str)
        ),
        _ => "not checked (the signature carries no OCSP response)".into(),
    };
    println!("signer:       {}", report.signer_subject);
    println!("serial:       {}", report.serial_hex);
    println!(
        "signing time: {} (claimed by the signer)",
        rfc3339(report.signing_time)
    );
    println!("chain:        {}", report.chain.join("\n              "));
    println!("revocation:   {status}");
}

/// What can be said of an invalid signature's signer even so (when its CMS verified).
fn describe_signer(out: &mut serde_json::Value, signed: Option<(Vec<u8>, time::OffsetDateTime)>) {
    if let Some((cert, signing_time)) = signed
        && let Ok(s) = profile::summary(&cert)
    {
        out["signer"] = json!(s.subject);
        out["serial"] = json!(s.serial_hex);
        out["signing_time"] = json!(rfc3339(signing_time));
    }
}
