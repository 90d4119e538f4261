//! The CA hierarchy, issued certificates, their revocation and the latest CRL of each CA.
//! Rows hold certificates and key-store references, never private keys.

use serde::Serialize;

use crate::Result;
use crate::db::{Arg, Db, Get};

/// A CA certificate and where its key is.
#[derive(Clone, Debug)]
pub struct Ca {
    /// `root`, `persons`, `persons-ocsp`.
    pub name: String,
    pub cert_der: Vec<u8>,
    /// `software`, `pkcs11`, or `none` for a root imported without its key.
    pub key_store: String,
    pub key_ref: Option<Vec<u8>>,
    pub created_at: i64,
}

/// An issued certificate.
#[derive(Clone, Debug, Serialize)]
pub struct Certificate {
    /// Lower-case hex.
    pub serial: String,
    pub ca: String,
    pub person_id: Option<String>,
    #[serde(skip)]
    pub cert_der: Vec<u8>,
    pub key_store: String,
    #[serde(skip)]
    pub key_ref: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub reason: Option<String>,
    pub created_at: i64,
}

/// A revoked certificate as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    pub serial: String,
    pub revoked_at: i64,
    pub reason: Option<String>,
}

/// A CA's latest CRL.
#[derive(Clone, Debug)]
pub struct Crl {
    pub number: i64,
    pub der: Vec<u8>,
    pub this_update: i64,
    pub next_update: i64,
}

fn ca_row(r: &dyn Get) -> Result<Ca> {
    Ok(Ca {
        name: r.text(0)?,
        cert_der: r.blob(1)?,
        key_store: r.text(2)?,
        key_ref: r.opt_blob(3)?,
        created_at: r.int(4)?,
    })
}

/// A CA by name.
pub async fn ca(c: &mut impl Db, name: &str) -> Result<Option<Ca>> {
    c.fetch_optional(
        "SELECT name, cert_der, key_store, key_ref, created_at FROM cas WHERE name = $1",
        &[name.into()],
        ca_row,
    )
    .await
}

/// Every CA, by name.
pub async fn cas(c: &mut impl Db) -> Result<Vec<Ca>> {
    c.fetch_all(
        "SELECT name, cert_der, key_store, key_ref, created_at FROM cas ORDER BY name",
        &[],
        ca_row,
    )
    .await
}

/// Adds a CA, or replaces its certificate and key (an OCSP signer renewed, a root imported
/// before the issuing CA existed).
pub async fn put_ca(c: &mut impl Db, ca: &Ca) -> Result<()> {
    let key = ca.key_ref.as_deref().map_or(Arg::NullBlob, Arg::Blob);
    c.execute(
        "INSERT INTO cas (name, cert_der, key_store, key_ref, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO UPDATE SET cert_der = excluded.cert_der, key_store = excluded.key_store, \
         key_ref = excluded.key_ref, created_at = excluded.created_at",
        &[
            ca.name.as_str().into(),
            Arg::Blob(&ca.cert_der),
            ca.key_store.as_str().into(),
            key,
            ca.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Removes a CA row (a request once its certificate is imported).
pub async fn delete_ca(c: &mut impl Db, name: &str) -> Result<()> {
    c.execute("DELETE FROM cas WHERE name = $1", &[name.into()])
        .await?;
    Ok(())
}

const CERT_COLS: &str = "serial, ca, person_id, cert_der, key_store, key_ref, not_before, not_after, revoked_at, reason, created_at";

fn cert_row(r: &dyn Get) -> Result<Certificate> {
    Ok(Certificate {
        serial: r.text(0)?,
        ca: r.text(1)?,
        person_id: r.opt_text(2)?,
        cert_der: r.blob(3)?,
        key_store: r.text(4)?,
        key_ref: r.blob(5)?,
        not_before: r.int(6)?,
        not_after: r.int(7)?,
        revoked_at: r.opt_int(8)?,
        reason: r.opt_text(9)?,
        created_at: r.int(10)?,
    })
}

/// Records an issued certificate.
pub async fn insert_certificate(c: &mut impl Db, cert: &Certificate) -> Result<()> {
    c.execute(
        &format!("INSERT INTO certificates ({CERT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
        &[
            cert.serial.as_str().into(),
            cert.ca.as_str().into(),
            cert.person_id.as_deref().into(),
            Arg::Blob(&cert.cert_der),
            cert.key_store.as_str().into(),
            Arg::Blob(&cert.key_ref),
            cert.not_before.into(),
            cert.not_after.into(),
            cert.revoked_at.into(),
            cert.reason.as_deref().into(),
            cert.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// A certificate by serial (lower-case hex).
pub async fn certificate(c: &mut impl Db, serial: &str) -> Result<Option<Certificate>> {
    c.fetch_optional(
        &format!("SELECT {CERT_COLS} FROM certificates WHERE serial = $1"),
        &[serial.into()],
        cert_row,
    )
    .await
}

/// Certificates, newest first: a person's, or all of them.
pub async fn certificates(c: &mut impl Db, person_id: Option<&str>) -> Result<Vec<Certificate>> {
    match person_id {
        Some(p) => {
            c.fetch_all(
                &format!("SELECT {CERT_COLS} FROM certificates WHERE person_id = $1 ORDER BY created_at DESC, serial"),
                &[p.into()],
                cert_row,
            )
            .await
        }
        None => {
            c.fetch_all(
                &format!("SELECT {CERT_COLS} FROM certificates ORDER BY created_at DESC, serial"),
                &[],
                cert_row,
            )
            .await
        }
    }
}

/// The person's certificate that is valid at `now` and not revoked, latest expiry first.
pub async fn current_for_person(
    c: &mut impl Db,
    person_id: &str,
    now: i64,
) -> Result<Option<Certificate>> {
    c.fetch_optional(
        &format!(
            "SELECT {CERT_COLS} FROM certificates WHERE person_id = $1 AND revoked_at IS NULL \
             AND not_before <= $2 AND not_after > $2 ORDER BY not_after DESC, serial LIMIT 1"
        ),
        &[person_id.into(), now.into()],
        cert_row,
    )
    .await
}

/// Revokes a certificate; false when it is unknown or already revoked (the first
/// revocation's time and reason stand).
pub async fn revoke(c: &mut impl Db, serial: &str, at: i64, reason: &str) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE certificates SET revoked_at = $2, reason = $3 WHERE serial = $1 AND revoked_at IS NULL",
            &[serial.into(), at.into(), reason.into()],
        )
        .await?;
    Ok(n == 1)
}

/// Every revoked certificate of a CA, for its CRL.
pub async fn revoked(c: &mut impl Db, ca: &str) -> Result<Vec<Revoked>> {
    c.fetch_all(
        "SELECT serial, revoked_at, reason FROM certificates WHERE ca = $1 AND revoked_at IS NOT NULL ORDER BY serial",
        &[ca.into()],
        |r| Ok(Revoked { serial: r.text(0)?, revoked_at: r.int(1)?, reason: r.opt_text(2)? }),
    )
    .await
}

/// A CA's latest CRL.
pub async fn crl(c: &mut impl Db, ca: &str) -> Result<Option<Crl>> {
    c.fetch_optional(
        "SELECT number, der, this_update, next_update FROM crls WHERE ca = $1",
        &[ca.into()],
        |r| {
            Ok(Crl {
                number: r.int(0)?,
                der: r.blob(1)?,
                this_update: r.int(2)?,
                next_update: r.int(3)?,
            })
        },
    )
    .await
}

/// Stores a CA's new CRL if its number is higher than the stored one's, so two nodes
/// regenerating at once keep the later CRL. True when stored.
pub async fn put_crl(c: &mut impl Db, ca: &str, crl: &Crl) -> Result<bool> {
    let n = c
        .execute(
            "INSERT INTO crls (ca, number, der, this_update, next_update) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (ca) DO UPDATE SET number = excluded.number, der = excluded.der, \
             this_update = excluded.this_update, next_update = excluded.next_update \
             WHERE crls.number < excluded.number",
            &[
                ca.into(),
                crl.number.into(),
                Arg::Blob(&crl.der),
                crl.this_update.into(),
                crl.next_update.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Serials revoked at or after `since`, for the OCSP caches of every node.
pub async fn revoked_since(c: &mut impl Db, since: i64) -> Result<Vec<String>> {
    c.fetch_all(
        "SELECT serial FROM certificates WHERE revoked_at >= $1",
        &[since.into()],
        |r| r.text(0),
    )
    .await
}

/// The person's most recently issued certificate, revoked or not.
pub async fn latest_for_person(c: &mut impl Db, person_id: &str) -> Result<Option<Certificate>> {
    c.fetch_optional(
        &format!(
            "SELECT {CERT_COLS} FROM certificates WHERE person_id = $1 \
             ORDER BY created_at DESC, serial LIMIT 1"
        ),
        &[person_id.into()],
        cert_row,
    )
    .await
}
