//! segl's CA at work: the hierarchy on first start, a person's certificate once their eID
//! is active, revocation with a fresh CRL, and the keys behind them in the key store.
//!
//! The certificate profiles, CRL and OCSP encodings are `segl-pki`'s; this module decides
//! when they are used and keeps what they produce in the store.

use std::sync::Arc;

use segl_crypto::keystore::{KeyRef, KeyStore};
use segl_pki::RevocationReason;
use segl_pki::profile::{self, Issuer, Profile, Request, Urls};
use segl_store::audit::{self, Event};
use segl_store::db::Db;
use segl_store::persons::Person;
use segl_store::pki::{self as rows, Ca, Certificate, Crl};
use segl_store::{Store, StoreError, apps, devices, persons};
use serde_json::json;
use time::OffsetDateTime;

use crate::error::ApiError;

/// The root CA.
pub const ROOT: &str = "root";
/// The issuing CA for persons.
pub const PERSONS: &str = "persons";
/// The persons CA's delegated OCSP responder.
pub const PERSONS_OCSP: &str = "persons-ocsp";
/// The persons CA's key and request while an offline root signs its certificate.
pub const PERSONS_REQUEST: &str = "persons-request";
/// The CAs whose certificates and CRLs are published.
pub const PUBLISHED: [&str; 2] = [ROOT, PERSONS];

/// How the CA issues.
#[derive(Clone, Debug)]
pub struct PkiSettings {
    /// Published URLs and the policy OID.
    pub urls: Urls,
    /// The organisation named in the CA certificates.
    pub organization: String,
    /// Lifetime of a person certificate, days.
    pub person_cert_days: i64,
    /// Lifetime of the root, days.
    pub root_days: i64,
    /// Lifetime of an issuing CA, days.
    pub issuing_days: i64,
    /// Lifetime of the OCSP signer's certificate, days (renewed at half-life).
    pub ocsp_signer_days: i64,
    /// A CRL's nextUpdate after its thisUpdate, seconds.
    pub crl_validity_secs: i64,
    /// A pre-signed OCSP response's nextUpdate after its thisUpdate, seconds.
    pub ocsp_validity_secs: i64,
}

impl PkiSettings {
    /// Defaults for a base URL.
    pub fn new(base: &str) -> PkiSettings {
        PkiSettings {
            urls: Urls {
                base: base.trim_end_matches('/').to_string(),
                policy: profile::DEFAULT_POLICY_OID.to_string(),
            },
            organization: "segl".into(),
            person_cert_days: 4 * 365,
            root_days: 20 * 365,
            issuing_days: 10 * 365,
            ocsp_signer_days: 90,
            crl_validity_secs: 24 * 3600,
            ocsp_validity_secs: 3600,
        }
    }
}

/// The CA: a key store and its settings.
#[derive(Clone)]
pub struct Pki {
    /// Where the private keys are.
    pub keys: Arc<dyn KeyStore>,
    /// How it issues.
    pub settings: Arc<PkiSettings>,
}

/// A key in the key store, signing for `segl-pki`.
pub struct KeySigner {
    keys: Arc<dyn KeyStore>,
    label: String,
    key: KeyRef,
    spki: Vec<u8>,
}

impl segl_pki::Signer for KeySigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, segl_pki::Error> {
        self.keys
            .sign(&self.label, &self.key, msg)
            .map_err(|e| segl_pki::Error::Sign(e.to_string()))
    }
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }
}

fn ca_label(name: &str) -> String {
    format!("segl-ca-{name}")
}

fn cert_label(serial: &str) -> String {
    format!("segl-cert-{serial}")
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn datetime(unix: i64) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(internal)
}

/// A random positive serial of 16 bytes (RFC 5280 wants at least 64 bits of entropy from
/// CAs, CA/B Forum style).
fn new_serial() -> Vec<u8> {
    let mut s = segl_crypto::random::random_bytes::<16>().to_vec();
    s[0] = (s[0] & 0x7f) | 0x01;
    s
}

impl Pki {
    /// A CA's signer, or an error when its key is elsewhere (a root kept offline).
    pub fn signer(&self, ca: &Ca) -> Result<KeySigner, ApiError> {
        let key = ca.key_ref.clone().ok_or_else(|| {
            ApiError::Internal(format!(
                "the key of CA {} is not in this key store",
                ca.name
            ))
        })?;
        if ca.key_store != self.keys.kind() {
            return Err(ApiError::Internal(format!(
                "CA {} has its key in the {} key store, but segl runs with {}",
                ca.name,
                ca.key_store,
                self.keys.kind()
            )));
        }
        Ok(KeySigner {
            keys: self.keys.clone(),
            label: ca_label(&ca.name),
            key: KeyRef(key),
            spki: profile::public_key_der(&ca.cert_der).map_err(internal)?,
        })
    }

    /// The signer of an issued certificate's own key.
    pub fn cert_signer(&self, cert: &Certificate) -> Result<KeySigner, ApiError> {
        Ok(KeySigner {
            keys: self.keys.clone(),
            label: cert_label(&cert.serial),
            key: KeyRef(cert.key_ref.clone()),
            spki: profile::public_key_der(&cert.cert_der).map_err(internal)?,
        })
    }

    fn issue_ca(
        &self,
        name: &str,
        profile: Profile,
        issuer: Option<(&Ca, &KeySigner)>,
        days: i64,
        now: i64,
    ) -> Result<Ca, ApiError> {
        let (key, spki) = self.keys.generate_p256(&ca_label(name)).map_err(internal)?;
        let not_before = datetime(now)?;
        let self_signer;
        let (cert_der, signer): (Option<&[u8]>, &dyn segl_pki::Signer) = match issuer {
            Some((ca, signer)) => (Some(&ca.cert_der), signer),
            None => {
                self_signer = KeySigner {
                    keys: self.keys.clone(),
                    label: ca_label(name),
                    key: key.clone(),
                    spki: spki.clone(),
                };
                (None, &self_signer)
            }
        };
        let cert = profile::issue(
            &Request {
                profile,
                public_key_der: &spki,
                serial: &new_serial(),
                not_before,
                not_after: not_before + time::Duration::days(days),
            },
            &Issuer { cert_der, signer },
            &self.settings.urls,
        )
        .map_err(internal)?;
        Ok(Ca {
            name: name.to_string(),
            cert_der: cert,
            key_store: self.keys.kind().to_string(),
            key_ref: Some(key.0),
            created_at: now,
        })
    }

    /// Creates what is missing of the hierarchy: the root (unless imported), the persons
    /// CA and its OCSP signer (renewed at half its life). Returns the names created.
    pub async fn ensure_hierarchy(&self, store: &Store, now: i64) -> Result<Vec<String>, ApiError> {
        let mut tx = store.begin().await?;
        let mut created = Vec::new();
        let org = &self.settings.organization;
        let root = match rows::ca(&mut tx, ROOT).await? {
            Some(r) => r,
            None => {
                let year = datetime(now)?.year();
                let r = self.issue_ca(
                    ROOT,
                    Profile::RootCa {
                        common_name: format!("{org} Root CA {year}"),
                        organization: org.clone(),
                    },
                    None,
                    self.settings.root_days,
                    now,
                )?;
                rows::put_ca(&mut tx, &r).await?;
                created.push(ROOT.to_string());
                r
            }
        };
        let persons_ca = match rows::ca(&mut tx, PERSONS).await? {
            Some(p) => p,
            None if root.key_ref.is_none() => {
                return Err(ApiError::problem(
                    axum::http::StatusCode::CONFLICT,
                    "ca_pending",
                    "the root was imported without its key: the persons CA waits for its \
                     certificate from the root (segl ca import --ca persons --cert FILE)",
                ));
            }
            None => {
                let root_signer = self.signer(&root)?;
                let p = self.issue_ca(
                    PERSONS,
                    Profile::IssuingCa {
                        name: PERSONS.into(),
                        common_name: format!("{org} Persons CA"),
                        organization: org.clone(),
                    },
                    Some((&root, &root_signer)),
                    self.settings.issuing_days,
                    now,
                )?;
                rows::put_ca(&mut tx, &p).await?;
                created.push(PERSONS.to_string());
                p
            }
        };
        let renew = match rows::ca(&mut tx, PERSONS_OCSP).await? {
            None => true,
            Some(o) => {
                let s = profile::summary(&o.cert_der).map_err(internal)?;
                let half = (s.not_after - s.not_before) / 2;
                datetime(now)? >= s.not_before + half
            }
        };
        if renew {
            let signer = self.signer(&persons_ca)?;
            let o = self.issue_ca(
                PERSONS_OCSP,
                Profile::OcspSigner {
                    ca: PERSONS.into(),
                    common_name: format!("{org} Persons CA OCSP responder"),
                    organization: org.clone(),
                },
                Some((&persons_ca, &signer)),
                self.settings.ocsp_signer_days,
                now,
            )?;
            rows::put_ca(&mut tx, &o).await?;
            created.push(PERSONS_OCSP.to_string());
        }
        if !created.is_empty() {
            audit::append(
                &mut tx,
                &Event {
                    event: "pki.ca_created",
                    subject: None,
                    client_id: None,
                    data: json!({ "cas": created, "key_store": self.keys.kind() }),
                },
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        if created.iter().any(|c| c == ROOT || c == PERSONS) {
            self.regenerate_crl(store, PERSONS, now).await?;
            if root.key_ref.is_some() {
                self.regenerate_crl(store, ROOT, now).await?;
            }
        }
        Ok(created)
    }

    /// First step of a root kept offline: stores the root's certificate alone, makes the
    /// persons CA's key, and returns its PKCS#10 request for the root to sign. Only on a
    /// data directory without CAs.
    pub async fn import_root(
        &self,
        store: &Store,
        root_der: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, ApiError> {
        let bad = |m: String| {
            ApiError::problem(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_certificate",
                m,
            )
        };
        if !profile::is_ca(root_der).map_err(|e| bad(e.to_string()))? {
            return Err(bad(
                "the root is not a CA certificate with keyCertSign".into()
            ));
        }
        profile::verify_issued_by(root_der, root_der)
            .map_err(|e| bad(format!("the root is not self-signed: {e}")))?;
        let mut tx = store.begin().await?;
        if !rows::cas(&mut tx).await?.is_empty() {
            return Err(ApiError::problem(
                axum::http::StatusCode::CONFLICT,
                "ca_exists",
                "this data directory already has a CA; a root is imported only into a new one",
            ));
        }
        rows::put_ca(
            &mut tx,
            &Ca {
                name: ROOT.into(),
                cert_der: root_der.to_vec(),
                key_store: "none".into(),
                key_ref: None,
                created_at: now,
            },
        )
        .await?;
        let (key, spki) = self
            .keys
            .generate_p256(&ca_label(PERSONS))
            .map_err(internal)?;
        let signer = KeySigner {
            keys: self.keys.clone(),
            label: ca_label(PERSONS),
            key: key.clone(),
            spki,
        };
        let org = &self.settings.organization;
        let csr = profile::request(
            &Profile::IssuingCa {
                name: PERSONS.into(),
                common_name: format!("{org} Persons CA"),
                organization: org.clone(),
            },
            &signer,
        )
        .map_err(internal)?;
        rows::put_ca(
            &mut tx,
            &Ca {
                name: PERSONS_REQUEST.into(),
                cert_der: csr.clone(),
                key_store: self.keys.kind().into(),
                key_ref: Some(key.0),
                created_at: now,
            },
        )
        .await?;
        audit::append(
            &mut tx,
            &Event {
                event: "pki.root_imported",
                subject: None,
                client_id: None,
                data: json!({ "subject": profile::summary(root_der).map_err(internal)?.subject }),
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(csr)
    }

    /// Second step: the persons CA's certificate, signed by the imported root for the
    /// key of [`Pki::import_root`]'s request. Then the OCSP signer and the CRL follow.
    pub async fn import_issuing(
        &self,
        store: &Store,
        cert_der: &[u8],
        now: i64,
    ) -> Result<(), ApiError> {
        let bad = |m: String| {
            ApiError::problem(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_certificate",
                m,
            )
        };
        let mut tx = store.begin().await?;
        let (Some(root), Some(pending)) = (
            rows::ca(&mut tx, ROOT).await?,
            rows::ca(&mut tx, PERSONS_REQUEST).await?,
        ) else {
            return Err(ApiError::problem(
                axum::http::StatusCode::CONFLICT,
                "no_pending_request",
                "no persons CA request waits here; start with segl ca import --root FILE",
            ));
        };
        profile::verify_issued_by(cert_der, &root.cert_der).map_err(|e| bad(e.to_string()))?;
        if !profile::is_ca(cert_der).map_err(|e| bad(e.to_string()))? {
            return Err(bad(
                "the certificate is not a CA certificate with keyCertSign".into(),
            ));
        }
        let wanted = profile::read_request(&pending.cert_der).map_err(internal)?;
        if profile::public_key_der(cert_der).map_err(|e| bad(e.to_string()))? != wanted {
            return Err(bad(
                "the certificate is for another key than the persons CA's request".into(),
            ));
        }
        rows::put_ca(
            &mut tx,
            &Ca {
                name: PERSONS.into(),
                cert_der: cert_der.to_vec(),
                key_store: pending.key_store,
                key_ref: pending.key_ref,
                created_at: now,
            },
        )
        .await?;
        rows::delete_ca(&mut tx, PERSONS_REQUEST).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.ensure_hierarchy(store, now).await?;
        self.regenerate_crl(store, PERSONS, now).await?;
        Ok(())
    }

    /// The offline root's side: signs a persons CA's PKCS#10 request as an issuing CA.
    pub async fn sign_request(
        &self,
        store: &Store,
        csr_der: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, ApiError> {
        let spki = profile::read_request(csr_der).map_err(|e| {
            ApiError::problem(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_request",
                e.to_string(),
            )
        })?;
        let mut c = store.conn().await?;
        let root = rows::ca(&mut *c, ROOT)
            .await?
            .ok_or_else(|| ApiError::Internal("no root CA".into()))?;
        let signer = self.signer(&root)?;
        let org = &self.settings.organization;
        let not_before = datetime(now)?;
        let cert = profile::issue(
            &Request {
                profile: Profile::IssuingCa {
                    name: PERSONS.into(),
                    common_name: format!("{org} Persons CA"),
                    organization: org.clone(),
                },
                public_key_der: &spki,
                serial: &new_serial(),
                not_before,
                not_after: not_before + time::Duration::days(self.settings.issuing_days),
            },
            &Issuer {
                cert_der: Some(&root.cert_der),
                signer: &signer,
            },
            &self.settings.urls,
        )
        .map_err(internal)?;
        audit::append(
            &mut *c,
            &Event {
                event: "pki.request_signed",
                subject: None,
                client_id: None,
                data: json!({ "ca": PERSONS }),
            },
            now,
        )
        .await?;
        Ok(cert)
    }

    /// Issues a certificate for the person with a new key in the key store.
    pub async fn issue_person(
        &self,
        c: &mut impl Db,
        person: &Person,
        now: i64,
    ) -> Result<Certificate, ApiError> {
        let ca = rows::ca(c, PERSONS)
            .await?
            .ok_or_else(|| ApiError::Internal("the persons CA does not exist yet".into()))?;
        let signer = self.signer(&ca)?;
        let serial = new_serial();
        let serial_hex = profile::hex(&serial);
        let (key, spki) = self
            .keys
            .generate_p256(&cert_label(&serial_hex))
            .map_err(internal)?;
        let (given_name, surname) = split_name(&person.name);
        let not_before = datetime(now)?;
        let not_after = not_before + time::Duration::days(self.settings.person_cert_days);
        let der = profile::issue(
            &Request {
                profile: Profile::Person {
                    ca: PERSONS.into(),
                    given_name,
                    surname,
                    // Pseudonymous and stable: the person's `sub`, never the national number.
                    serial_number: format!("UN:NO-{}", person.sub),
                },
                public_key_der: &spki,
                serial: &serial,
                not_before,
                not_after,
            },
            &Issuer {
                cert_der: Some(&ca.cert_der),
                signer: &signer,
            },
            &self.settings.urls,
        )
        .map_err(internal)?;
        let cert = Certificate {
            serial: serial_hex,
            ca: PERSONS.into(),
            person_id: Some(person.id.clone()),
            cert_der: der,
            key_store: self.keys.kind().to_string(),
            key_ref: key.0,
            not_before: now,
            not_after: not_after.unix_timestamp(),
            revoked_at: None,
            reason: None,
            created_at: now,
        };
        rows::insert_certificate(c, &cert).await?;
        audit::append(
            c,
            &Event {
                event: "pki.certificate_issued",
                subject: Some(&person.id),
                client_id: None,
                data: json!({ "serial": cert.serial, "ca": PERSONS, "not_after": cert.not_after }),
            },
            now,
        )
        .await?;
        Ok(cert)
    }

    /// Gives an active eID (a password and a code device or an app) its certificate if it
    /// has no valid one. Returns the certificate issued, if any.
    pub async fn ensure_person_certificate(
        &self,
        store: &Store,
        person_id: &str,
        now: i64,
    ) -> Result<Option<Certificate>, ApiError> {
        let mut tx = store.begin().await?;
        let Some(person) = persons::by_id(&mut tx, person_id).await? else {
            return Ok(None);
        };
        if !eid_active(&mut tx, person_id).await? {
            return Ok(None);
        }
        if rows::current_for_person(&mut tx, person_id, now)
            .await?
            .is_some()
            || blocked_by_revocation(&mut tx, person_id).await?
        {
            return Ok(None);
        }
        let cert = self.issue_person(&mut tx, &person, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(cert))
    }

    /// Revokes a certificate and publishes a new CRL. False when the serial is unknown
    /// or the certificate was already revoked.
    pub async fn revoke(
        &self,
        store: &Store,
        serial: &str,
        reason: RevocationReason,
        by: &str,
        now: i64,
    ) -> Result<bool, ApiError> {
        let mut tx = store.begin().await?;
        let Some(cert) = rows::certificate(&mut tx, serial).await? else {
            return Ok(false);
        };
        if !rows::revoke(&mut tx, serial, now, reason.as_str()).await? {
            return Ok(false);
        }
        audit::append(
            &mut tx,
            &Event {
                event: "pki.certificate_revoked",
                subject: cert.person_id.as_deref(),
                client_id: None,
                data: json!({ "serial": serial, "ca": cert.ca, "reason": reason.as_str(), "by": by }),
            },
            now,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.regenerate_crl(store, &cert.ca, now).await?;
        Ok(true)
    }

    /// Signs and stores a new CRL for `ca` with every revoked certificate.
    pub async fn regenerate_crl(
        &self,
        store: &Store,
        ca_name: &str,
        now: i64,
    ) -> Result<Crl, ApiError> {
        let mut c = store.conn().await?;
        let ca = rows::ca(&mut *c, ca_name)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("no CA named {ca_name}")))?;
        let signer = self.signer(&ca)?;
        let revoked = rows::revoked(&mut *c, ca_name).await?;
        let number = rows::crl(&mut *c, ca_name)
            .await?
            .map_or(1, |l| l.number + 1);
        let entries = revoked.into_iter().filter_map(|r| {
            Some(segl_pki::crl::RevokedEntry {
                serial: from_hex(&r.serial)?,
                revoked_at: OffsetDateTime::from_unix_timestamp(r.revoked_at).ok()?,
                reason: r.reason.as_deref().and_then(RevocationReason::parse),
            })
        });
        let this_update = datetime(now)?;
        let next_update = this_update + time::Duration::seconds(self.settings.crl_validity_secs);
        let der = segl_pki::crl::build_crl(
            &ca.cert_der,
            &signer,
            u64::try_from(number).map_err(internal)?,
            this_update,
            next_update,
            entries,
        )
        .map_err(internal)?;
        let crl = Crl {
            number,
            der,
            this_update: now,
            next_update: next_update.unix_timestamp(),
        };
        rows::put_crl(&mut *c, ca_name, &crl).await?;
        Ok(crl)
    }
}

/// An eID is active when the person has a password and a code device or an app, and is
/// not blocked.
pub async fn eid_active(c: &mut impl Db, person_id: &str) -> Result<bool, StoreError> {
    if persons::blocked(c, person_id).await?.is_some() {
        return Ok(false);
    }
    if persons::password(c, person_id).await?.is_none() {
        return Ok(false);
    }
    if devices::for_person(c, person_id).await?.is_some() {
        return Ok(true);
    }
    Ok(apps::active_for(c, person_id).await?.is_some())
}

/// Whether the person's latest certificate was revoked for a reason other than being
/// superseded: a block, which no automatic issuance may undo (only `segl cert issue`, or a
/// new order's identity check and activation after the revocation).
pub async fn blocked_by_revocation(c: &mut impl Db, person_id: &str) -> Result<bool, StoreError> {
    let Some(cert) = rows::latest_for_person(c, person_id).await? else {
        return Ok(false);
    };
    let Some(revoked_at) = cert.revoked_at else {
        return Ok(false);
    };
    if cert.reason.as_deref().and_then(RevocationReason::parse)
        == Some(RevocationReason::Superseded)
    {
        return Ok(false);
    }
    let renewed = segl_store::orders::last_activation(c, person_id)
        .await?
        .is_some_and(|t| t >= revoked_at);
    Ok(!renewed)
}

/// Given name(s) and surname from a full name: the last word is the surname.
fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.rsplit_once(' ') {
        Some((given, surname)) => (given.trim().to_string(), surname.to_string()),
        None => (name.to_string(), name.to_string()),
    }
}

/// Bytes of a lower-case hex serial.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
