//! Signing orders and their documents. An order moves `pending → approved → signed`, or
//! ends `failed` or `cancelled`; every move is a conditional update from the state it
//! expects, so of two racing requests exactly one wins.

use crate::Result;
use crate::db::{Arg, Db, Get};

/// A signing order as stored.
#[derive(Clone, Debug)]
pub struct Order {
    pub id: String,
    pub client_id: String,
    /// `pending`, `approved`, `signed`, `failed`, `cancelled`.
    pub state: String,
    pub text: String,
    /// The national identity number the order is for, if the relying party named one.
    pub login_hint: Option<String>,
    pub redirect_uri: Option<String>,
    pub rp_state: Option<String>,
    /// Space-separated language tags.
    pub ui_locales: String,
    pub flow_id: Option<String>,
    pub person_id: Option<String>,
    /// `otp` or `app`.
    pub method: Option<String>,
    /// JSON array of RFC 8176 values.
    pub amr: Option<String>,
    /// JSON: the app's signed approval, when the app approved.
    pub approval: Option<String>,
    pub cert_serial: Option<String>,
    pub ocsp_der: Option<Vec<u8>>,
    /// Why it failed, in state `failed`.
    pub error: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub signed_at: Option<i64>,
}

/// A document of an order.
#[derive(Clone, Debug)]
pub struct Document {
    pub idx: i64,
    pub name: String,
    /// `pdf` or `digest`.
    pub kind: String,
    /// SHA-256 of the PDF, or the digest the relying party gave.
    pub digest: Vec<u8>,
    /// The PDF to sign (kind `pdf`, until signed).
    pub content: Option<Vec<u8>>,
    pub cms: Option<Vec<u8>>,
    pub signed_pdf: Option<Vec<u8>>,
}

/// What signing produced for one document.
#[derive(Clone, Debug)]
pub struct Signed {
    pub idx: i64,
    pub cms: Vec<u8>,
    pub signed_pdf: Option<Vec<u8>>,
}

const ORDER_COLS: &str = "id, client_id, state, text, login_hint, redirect_uri, rp_state, ui_locales, \
     flow_id, person_id, method, amr, approval, cert_serial, ocsp_der, error, created_at, expires_at, signed_at";

fn order_row(r: &dyn Get) -> Result<Order> {
    Ok(Order {
        id: r.text(0)?,
        client_id: r.text(1)?,
        state: r.text(2)?,
        text: r.text(3)?,
        login_hint: r.opt_text(4)?,
        redirect_uri: r.opt_text(5)?,
        rp_state: r.opt_text(6)?,
        ui_locales: r.text(7)?,
        flow_id: r.opt_text(8)?,
        person_id: r.opt_text(9)?,
        method: r.opt_text(10)?,
        amr: r.opt_text(11)?,
        approval: r.opt_text(12)?,
        cert_serial: r.opt_text(13)?,
        ocsp_der: r.opt_blob(14)?,
        error: r.opt_text(15)?,
        created_at: r.int(16)?,
        expires_at: r.int(17)?,
        signed_at: r.opt_int(18)?,
    })
}

/// Adds a pending order with its documents.
pub async fn insert(c: &mut impl Db, o: &Order, docs: &[Document]) -> Result<()> {
    c.execute(
        "INSERT INTO sign_orders (id, client_id, state, text, login_hint, redirect_uri, rp_state, \
         ui_locales, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            (&o.id).into(),
            (&o.client_id).into(),
            (&o.state).into(),
            (&o.text).into(),
            (&o.login_hint).into(),
            (&o.redirect_uri).into(),
            (&o.rp_state).into(),
            (&o.ui_locales).into(),
            o.created_at.into(),
            o.expires_at.into(),
        ],
    )
    .await?;
    for d in docs {
        c.execute(
            "INSERT INTO sign_documents (order_id, idx, name, kind, digest, content) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                (&o.id).into(),
                d.idx.into(),
                (&d.name).into(),
                (&d.kind).into(),
                Arg::Blob(&d.digest),
                d.content.as_deref().map_or(Arg::NullBlob, Arg::Blob),
            ],
        )
        .await?;
    }
    Ok(())
}

/// An order by id.
pub async fn order(c: &mut impl Db, id: &str) -> Result<Option<Order>> {
    c.fetch_optional(
        &format!("SELECT {ORDER_COLS} FROM sign_orders WHERE id = $1"),
        &[id.into()],
        order_row,
    )
    .await
}

/// An order's documents in order; the PDFs themselves only with `content`.
pub async fn documents(c: &mut impl Db, order_id: &str, content: bool) -> Result<Vec<Document>> {
    let sql = if content {
        "SELECT idx, name, kind, digest, content, cms, signed_pdf FROM sign_documents \
         WHERE order_id = $1 ORDER BY idx"
    } else {
        "SELECT idx, name, kind, digest, NULL, cms, signed_pdf FROM sign_documents \
         WHERE order_id = $1 ORDER BY idx"
    };
    c.fetch_all(sql, &[order_id.into()], |r| {
        Ok(Document {
            idx: r.int(0)?,
            name: r.text(1)?,
            kind: r.text(2)?,
            digest: r.blob(3)?,
            content: r.opt_blob(4)?,
            cms: r.opt_blob(5)?,
            signed_pdf: r.opt_blob(6)?,
        })
    })
    .await
}

/// The names of an order's documents, for the sign page.
pub async fn document_names(c: &mut impl Db, order_id: &str) -> Result<Vec<String>> {
    c.fetch_all(
        "SELECT name FROM sign_documents WHERE order_id = $1 ORDER BY idx",
        &[order_id.into()],
        |r| r.text(0),
    )
    .await
}

/// Records the flow a browser opened for a pending order; false when it is not pending.
pub async fn set_flow(c: &mut impl Db, id: &str, flow_id: &str, now: i64) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE sign_orders SET flow_id = $2 WHERE id = $1 AND state = 'pending' AND expires_at > $3",
            &[id.into(), flow_id.into(), now.into()],
        )
        .await?;
    Ok(n == 1)
}

/// The person approved in `flow_id`: `pending → approved`. False when the order is not
/// pending any more, has expired, or belongs to another flow now.
#[allow(clippy::too_many_arguments)]
pub async fn approve(
    c: &mut impl Db,
    id: &str,
    flow_id: &str,
    person_id: &str,
    method: &str,
    amr: &str,
    approval: Option<&str>,
    now: i64,
) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE sign_orders SET state = 'approved', person_id = $3, method = $4, amr = $5, \
             approval = $6 WHERE id = $1 AND flow_id = $2 AND state = 'pending' AND expires_at > $7",
            &[
                id.into(),
                flow_id.into(),
                person_id.into(),
                method.into(),
                amr.into(),
                approval.into(),
                now.into(),
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Ends an order that is in `from` with `error`; false when it was not.
pub async fn fail(c: &mut impl Db, id: &str, from: &str, error: &str) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE sign_orders SET state = 'failed', error = $3 WHERE id = $1 AND state = $2",
            &[id.into(), from.into(), error.into()],
        )
        .await?;
    if n == 1 {
        drop_contents(c, id).await?;
    }
    Ok(n == 1)
}

/// Cancels a pending order; false when it was not pending (or has expired).
pub async fn cancel(c: &mut impl Db, id: &str, now: i64) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE sign_orders SET state = 'cancelled' WHERE id = $1 AND state = 'pending' \
             AND expires_at > $2",
            &[id.into(), now.into()],
        )
        .await?;
    if n == 1 {
        drop_contents(c, id).await?;
    }
    Ok(n == 1)
}

/// Stores the signatures: `approved → signed`. False when the order was not approved (a
/// second completion lost the race).
pub async fn complete(
    c: &mut impl Db,
    id: &str,
    cert_serial: &str,
    ocsp_der: &[u8],
    signed: &[Signed],
    now: i64,
) -> Result<bool> {
    let n = c
        .execute(
            "UPDATE sign_orders SET state = 'signed', cert_serial = $2, ocsp_der = $3, signed_at = $4 \
             WHERE id = $1 AND state = 'approved'",
            &[id.into(), cert_serial.into(), Arg::Blob(ocsp_der), now.into()],
        )
        .await?;
    if n != 1 {
        return Ok(false);
    }
    for s in signed {
        // The signed PDF holds the original: the copy to sign is not kept.
        c.execute(
            "UPDATE sign_documents SET cms = $3, signed_pdf = $4, content = NULL \
             WHERE order_id = $1 AND idx = $2",
            &[
                id.into(),
                s.idx.into(),
                Arg::Blob(&s.cms),
                s.signed_pdf.as_deref().map_or(Arg::NullBlob, Arg::Blob),
            ],
        )
        .await?;
    }
    Ok(true)
}

/// An order that will not be signed keeps no copy of its PDFs.
async fn drop_contents(c: &mut impl Db, id: &str) -> Result<()> {
    c.execute(
        "UPDATE sign_documents SET content = NULL WHERE order_id = $1",
        &[id.into()],
    )
    .await?;
    Ok(())
}

/// Forgets orders that ended (or lapsed) before `before`, with their documents and
/// results: the relying party has had its time to fetch them. Returns how many.
pub async fn purge(c: &mut impl Db, before: i64) -> Result<u64> {
    c.execute(
        "DELETE FROM sign_documents WHERE order_id IN \
         (SELECT id FROM sign_orders WHERE expires_at < $1)",
        &[before.into()],
    )
    .await?;
    c.execute(
        "DELETE FROM sign_orders WHERE expires_at < $1",
        &[before.into()],
    )
    .await
}
