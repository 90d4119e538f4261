//! PDF signatures at PAdES baseline B-B (ETSI EN 319 142-1): signing a PDF by an
//! incremental update, and reading the signatures a PDF carries.
//!
//! - [`inspect`] parses a PDF (with `lopdf`, strictly: no repaired cross-reference data)
//!   and says what it is, or precisely why it is refused (empty, not a PDF, truncated,
//!   damaged, encrypted).
//! - [`sign_pdf`] signs in one call; [`prepare`] and [`PreparedPdf::finish`] do the same
//!   in two steps, for a key that signs elsewhere. The update appends, after the original
//!   bytes left unchanged: a signature dictionary (/SubFilter /ETSI.CAdES.detached, /M,
//!   /ByteRange, /Contents reserved for the CMS), an invisible signature field widget on
//!   page 1, the page's /Annots and the catalog's /AcroForm with the field added (an
//!   existing form is extended, not replaced), and a cross-reference section of the same
//!   kind as the file's last one (table or stream) with /Prev.
//! - [`signatures`] lists the signature fields with their byte ranges checked, their CMS
//!   (padding removed) and the digest of what they cover; [`crate::verify`] then checks
//!   each CMS, its chain and revocation.
//!
//! Objects the update changes (the page, the catalog, the form) are rewritten from their
//! original bytes with only the one entry edited, never re-serialised from `lopdf`'s
//! model: that would round real numbers through `f32` and change values an earlier
//! signature covers, which validators such as pyHanko compare.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use lopdf::xref::XrefEntry;
use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId, Writer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::cms::CmsSigner;
use crate::{Error, Signer};

/// New cross-reference entries: object number → (offset, generation).
type Offsets = BTreeMap<u32, (usize, u16)>;

/// How far from the end of the file `startxref` and `%%EOF` are looked for.
const TAIL: usize = 1024;
/// Deepest nesting of arrays and dictionaries read from raw object bytes.
const MAX_DEPTH: usize = 64;
/// Deepest form field hierarchy followed.
const MAX_FIELD_DEPTH: usize = 32;
/// Widget annotation flags: Print (3) and Locked (8), as PAdES signers set them.
const WIDGET_FLAGS: u32 = 132;
/// The most /Contents [`prepare`] reserves: a CMS with certificates, an OCSP response and
/// a timestamp token is a few kilobytes.
pub const MAX_CONTENTS_LEN: usize = 1 << 20;
/// Digits reserved for each ByteRange number (files up to 10^10 - 1 bytes).
const BYTE_RANGE_DIGITS: usize = 10;

/// What [`inspect`] found in a PDF it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PdfInfo {
    /// The header's version ("1.7").
    pub version: String,
    pub page_count: usize,
    /// Signature fields that hold a signature.
    pub signature_count: usize,
    /// Whether the last cross-reference section is a stream (PDF 1.5+), not a table.
    pub xref_stream: bool,
}

/// What a PAdES signature says besides its CMS.
#[derive(Clone, Debug)]
pub struct PadesOptions {
    /// Written as the dictionary's /M: PAdES carries the signing time there, not in the
    /// CMS. Whole seconds; written in UTC.
    pub signing_time: OffsetDateTime,
    /// The dictionary's /Name: who signed, as a viewer shows it.
    pub signer_name: String,
    /// The dictionary's /Reason, if any.
    pub reason: Option<String>,
    /// The new signature field's name; default `Signature1`, `Signature2`, … (the first
    /// the PDF does not have).
    pub field_name: Option<String>,
}

/// A PDF with its signature update written and /Contents still empty (zeros): sign
/// [`PreparedPdf::digest`], then [`PreparedPdf::finish`] with the CMS.
#[derive(Clone, Debug)]
pub struct PreparedPdf {
    /// The whole output, placeholder included.
    bytes: Vec<u8>,
    /// Where the hex digits of /Contents are (between `<` and `>`).
    contents_hex: Range<usize>,
    digest: [u8; 32],
    field_name: String,
}

impl PreparedPdf {
    /// SHA-256 over the ByteRange: everything but the /Contents hex string.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The name of the signature field that was added.
    pub fn field_name(&self) -> &str {
        &self.field_name
    }

    /// How many bytes of CMS fit in /Contents.
    pub fn room(&self) -> usize {
        self.contents_hex.len() / 2
    }

    /// The signed PDF: `cms_der` written, as hex, into /Contents; the rest of /Contents
    /// stays zeros (which [`signatures`] strips by reading the DER length).
    pub fn finish(mut self, cms_der: &[u8]) -> Result<Vec<u8>, Error> {
        if cms_der.len() > self.room() {
            return Err(Error::PdfSignatureTooLarge {
                len: cms_der.len(),
                room: self.room(),
            });
        }
        let hex = hex_upper(cms_der);
        let start = self.contents_hex.start;
        self.bytes
            .get_mut(start..start + hex.len())
            .ok_or_else(|| Error::Invalid("the /Contents placeholder moved".into()))?
            .copy_from_slice(&hex);
        Ok(self.bytes)
    }
}

/// One signature field that holds a signature, as [`signatures`] read it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PdfSignature {
    /// The field's fully qualified name (partial names joined with `.`).
    pub field_name: String,
    /// `[0, b, c, d]`: the bytes `0..b` and `c..c+d` are signed; `b..c` is /Contents.
    pub byte_range: [usize; 4],
    /// The CMS from /Contents, without the zero padding after its DER.
    pub cms_der: Vec<u8>,
    /// SHA-256 of the two byte ranges: what the CMS's message digest must be.
    pub digest: [u8; 32],
    /// Whether the byte range reaches the end of the file. False means that the file was
    /// changed after this signature by an incremental update, which the signature does
    /// not cover (another signature, or anything else).
    pub covers_whole_file: bool,
    /// `c + d`: the length of the revision this signature covers.
    pub signed_len: usize,
    /// /SubFilter (`ETSI.CAdES.detached` for PAdES, `adbe.pkcs7.detached`, …).
    pub sub_filter: String,
    /// /M, if present and readable.
    pub signing_time: Option<OffsetDateTime>,
    /// /Name, if present.
    pub signer_name: Option<String>,
    /// /Reason, if present.
    pub reason: Option<String>,
}

/// Parses a PDF and says what it is: refuses an empty, non-PDF, truncated, damaged or
/// encrypted one with the matching error.
pub fn inspect(pdf: &[u8]) -> Result<PdfInfo, Error> {
    let loaded = Loaded::new(pdf)?;
    let signature_count = loaded
        .fields()?
        .iter()
        .filter(|f| f.signature.is_some())
        .count();
    Ok(PdfInfo {
        version: loaded.doc.version.clone(),
        page_count: loaded.doc.get_pages().len(),
        signature_count,
        xref_stream: loaded.xref_stream,
    })
}

/// Signs `pdf` at PAdES B-B: [`prepare`] with room for the longest CMS `cms` can make,
/// [`CmsSigner::sign_pades`] over its digest (with `ocsp_der`, a DER OCSPResponse for
/// the signer's certificate, embedded per RFC 5940), [`PreparedPdf::finish`].
pub fn sign_pdf(
    pdf: &[u8],
    opts: &PadesOptions,
    cms: &CmsSigner,
    signer: &dyn Signer,
    ocsp_der: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    let prepared = prepare(pdf, opts, cms.pades_max_len(ocsp_der)?)?;
    let cms_der = cms.sign_pades(signer, prepared.digest(), ocsp_der)?;
    prepared.finish(&cms_der)
}

/// Writes the signature's incremental update with /Contents reserved for a CMS of up to
/// `contents_len` bytes (at most [`MAX_CONTENTS_LEN`]), and computes the digest to sign.
pub fn prepare(pdf: &[u8], opts: &PadesOptions, contents_len: usize) -> Result<PreparedPdf, Error> {
    if !(1..=MAX_CONTENTS_LEN).contains(&contents_len) {
        return Err(Error::Invalid(format!(
            "room for the CMS must be 1 to {MAX_CONTENTS_LEN} bytes, not {contents_len}"
        )));
    }
    let loaded = Loaded::new(pdf)?;
    let doc = &loaded.doc;
    let catalog_id = loaded.catalog_id()?;
    let page_id = *doc
        .get_pages()
        .get(&1)
        .ok_or_else(|| Error::PdfUnsupported("the PDF has no pages".into()))?;

    let existing: BTreeSet<String> = loaded.fields()?.into_iter().map(|f| f.name).collect();
    let field_name = match &opts.field_name {
        Some(name) if existing.contains(name) => return Err(Error::PdfFieldExists(name.clone())),
        Some(name) if name.is_empty() || name.contains('.') => {
            return Err(Error::Invalid(format!(
                "signature field name {name:?} must be non-empty and without '.'"
            )));
        }
        Some(name) => name.clone(),
        None => (1..)
            .map(|n| format!("Signature{n}"))
            .find(|n| !existing.contains(n))
            .unwrap_or_default(),
    };

    let trailer_size = doc
        .trailer
        .get(b"Size")
        .and_then(Object::as_i64)
        .ok()
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0);
    let first_new = trailer_size.max(doc.max_id.saturating_add(1));
    let sig_id: ObjectId = (first_new, 0);
    let widget_id: ObjectId = (first_new + 1, 0);
    let mut next_id = first_new + 2;
    let widget_ref = reference(widget_id);

    let mut update = Update {
        loaded: &loaded,
        objects: BTreeMap::new(),
    };

    // Page 1's /Annots: the array object if it is one, else the page itself.
    let page = doc.get_dictionary(page_id).map_err(damaged)?;
    match page.get(b"Annots") {
        Ok(Object::Reference(annots_id)) => update.push_to_array(*annots_id, &widget_ref)?,
        _ => {
            let raw = update.current(page_id)?;
            let edited = dict_push(&raw, b"Annots", &widget_ref)?;
            update.objects.insert(page_id, edited);
        }
    }

    // The catalog's /AcroForm: the form object if it is one, else inline or new.
    let catalog = doc.get_dictionary(catalog_id).map_err(damaged)?;
    match catalog.get(b"AcroForm") {
        Ok(Object::Reference(form_id)) => {
            let form = doc.get_dictionary(*form_id).map_err(damaged)?;
            let raw = update.current(*form_id)?;
            let edited = update.edit_form(&raw, form, &widget_ref)?;
            update.objects.insert(*form_id, edited);
        }
        Ok(Object::Dictionary(form)) => {
            let raw = update.current(catalog_id)?;
            let span = dict_value(&raw, b"AcroForm")?
                .ok_or_else(|| damaged_msg("the catalog's /AcroForm is not in its bytes"))?;
            let edited_form = update.edit_form(&raw[span.clone()], form, &widget_ref)?;
            let edited = splice(&raw, span, &edited_form);
            update.objects.insert(catalog_id, edited);
        }
        _ => {
            let form_id: ObjectId = (next_id, 0);
            next_id += 1;
            let raw = update.current(catalog_id)?;
            let edited = dict_set(&raw, b"AcroForm", &reference(form_id))?;
            update.objects.insert(catalog_id, edited);
            update.objects.insert(
                form_id,
                [b"<< /Fields [".as_slice(), &widget_ref, b"] /SigFlags 3 >>"].concat(),
            );
        }
    }

    let mut widget = b"<< /Type /Annot /Subtype /Widget /FT /Sig /T ".to_vec();
    widget.extend_from_slice(&pdf_text(&field_name));
    widget.extend_from_slice(b" /V ");
    widget.extend_from_slice(&reference(sig_id));
    widget.extend_from_slice(format!(" /F {WIDGET_FLAGS} /Rect [0 0 0 0] /P ").as_bytes());
    widget.extend_from_slice(&reference(page_id));
    widget.extend_from_slice(b" >>");
    update.objects.insert(widget_id, widget);

    let mut objects = update.objects;
    let (sig_dict, byte_range_at, contents_at) = signature_dictionary(opts, contents_len)?;
    objects.insert(sig_id, sig_dict);

    // The update, after the original bytes.
    let mut out = Vec::with_capacity(pdf.len() + 2 * contents_len + 4096);
    out.extend_from_slice(pdf);
    if !matches!(pdf.last(), Some(b'\n' | b'\r')) {
        out.push(b'\n');
    }
    let mut offsets = BTreeMap::new();
    let mut sig_offset = 0;
    for (id, body) in &objects {
        offsets.insert(id.0, (out.len(), id.1));
        out.extend_from_slice(format!("{} {} obj\n", id.0, id.1).as_bytes());
        if *id == sig_id {
            sig_offset = out.len();
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let trailer = loaded.update_trailer(opts, &field_name)?;
    if loaded.xref_stream {
        let xref_id = next_id;
        offsets.insert(xref_id, (out.len(), 0));
        let offset = out.len();
        write_xref_stream(&mut out, xref_id, &offsets, &trailer, loaded.startxref);
        out.extend_from_slice(format!("startxref\n{offset}\n%%EOF\n").as_bytes());
    } else {
        let size = next_id;
        let offset = out.len();
        write_xref_table(&mut out, &offsets);
        out.extend_from_slice(b"trailer\n<< ");
        out.extend_from_slice(format!("/Size {size} ").as_bytes());
        out.extend_from_slice(&trailer);
        out.extend_from_slice(format!(" /Prev {} >>\n", loaded.startxref).as_bytes());
        out.extend_from_slice(format!("startxref\n{offset}\n%%EOF\n").as_bytes());
    }

    // The ByteRange: everything but /Contents' `<…>`.
    let contents_start = sig_offset + contents_at;
    let contents_end = contents_start + 2 * contents_len + 2;
    let byte_range = [0, contents_start, contents_end, out.len() - contents_end];
    let numbers = format!("0 {} {} {}", byte_range[1], byte_range[2], byte_range[3]);
    let slot = sig_offset + byte_range_at;
    let placeholder = out
        .get_mut(slot..slot + byte_range_placeholder().len())
        .ok_or_else(|| Error::Invalid("the /ByteRange placeholder moved".into()))?;
    if numbers.len() + 2 > placeholder.len() {
        return Err(Error::PdfUnsupported(
            "the signed PDF would be too large for its /ByteRange".into(),
        ));
    }
    placeholder.fill(b' ');
    placeholder[0] = b'[';
    placeholder[1..=numbers.len()].copy_from_slice(numbers.as_bytes());
    let last = placeholder.len() - 1;
    placeholder[last] = b']';

    // The update must read back with the new signature field in it: an edit that broke
    // the file would otherwise only show once the PDF reaches its reader.
    let reads_back = Loaded::new(&out)
        .and_then(|l| l.fields())
        .map_err(|e| e.to_string())
        .and_then(|fields| {
            fields
                .iter()
                .any(|f| f.name == field_name && f.signature.is_some())
                .then_some(())
                .ok_or_else(|| "the new signature field is not in the form".to_string())
        });
    if let Err(e) = reads_back {
        return Err(Error::PdfUnsupported(format!(
            "the signed PDF does not read back ({e})"
        )));
    }

    let mut hasher = Sha256::new();
    hasher.update(&out[..contents_start]);
    hasher.update(&out[contents_end..]);
    Ok(PreparedPdf {
        digest: hasher.finalize().into(),
        contents_hex: contents_start + 1..contents_end - 1,
        bytes: out,
        field_name,
    })
}

/// The signature fields of `pdf` that hold a signature, in signing order (by the length
/// of the revision each covers). A malformed signature dictionary is an error naming its
/// field ([`Error::PdfSignatureMalformed`]); a PDF without signatures gives an empty list.
pub fn signatures(pdf: &[u8]) -> Result<Vec<PdfSignature>, Error> {
    let loaded = Loaded::new(pdf)?;
    let mut found = Vec::new();
    for field in loaded.fields()? {
        let Some((container, sig)) = &field.signature else {
            continue;
        };
        found.push(loaded.read_signature(&field.name, *container, sig)?);
    }
    found.sort_by_key(|s| s.signed_len);
    Ok(found)
}

/// A PDF parsed and checked for what signing and reading need.
struct Loaded<'a> {
    pdf: &'a [u8],
    doc: Document,
    /// The offset of the last cross-reference section (`startxref`).
    startxref: usize,
    /// Whether that section is a stream.
    xref_stream: bool,
}

/// A form field as [`Loaded::fields`] found it.
struct Field {
    /// Fully qualified.
    name: String,
    /// For a signature field with a value: the object holding the signature dictionary
    /// (its own, or the field's if /V is inline) and the dictionary.
    signature: Option<(ObjectId, Dictionary)>,
}

impl<'a> Loaded<'a> {
    fn new(pdf: &'a [u8]) -> Result<Self, Error> {
        if pdf.is_empty() {
            return Err(Error::PdfEmpty);
        }
        if !pdf.starts_with(b"%PDF-") {
            return Err(Error::NotPdf);
        }
        let startxref = find_startxref(pdf)?;
        if u32::try_from(pdf.len()).is_err() {
            return Err(Error::PdfUnsupported(
                "larger than 4 GiB (the cross-reference offsets segl reads)".into(),
            ));
        }
        let options = LoadOptions {
            strict: true,
            ..LoadOptions::default()
        };
        let doc = Document::load_mem_with_options(pdf, options).map_err(|e| {
            if has_encrypt(pdf) {
                Error::PdfEncrypted
            } else {
                damaged(e)
            }
        })?;
        if doc.is_encrypted() || doc.was_encrypted() || doc.trailer.has(b"Encrypt") {
            return Err(Error::PdfEncrypted);
        }
        if doc.xref_recovery.is_some() {
            return Err(damaged_msg(
                "its cross-reference data does not match its objects",
            ));
        }
        let xref_stream = !pdf
            .get(startxref..)
            .is_some_and(|rest| rest.starts_with(b"xref"));
        let loaded = Loaded {
            pdf,
            doc,
            startxref,
            xref_stream,
        };
        let catalog = loaded.catalog_id()?;
        let pages = loaded
            .doc
            .get_dictionary(catalog)
            .map_err(damaged)?
            .get(b"Pages")
            .and_then(Object::as_reference)
            .map_err(|_| damaged_msg("the catalog has no page tree (/Pages)"))?;
        loaded
            .doc
            .get_dictionary(pages)
            .map_err(|_| damaged_msg("the page tree's root does not load"))?;
        Ok(loaded)
    }

    fn catalog_id(&self) -> Result<ObjectId, Error> {
        self.doc
            .trailer
            .get(b"Root")
            .and_then(Object::as_reference)
            .map_err(|_| damaged_msg("the trailer has no /Root reference"))
    }

    /// The value bytes of indirect object `id` as written (from an object stream if it
    /// is in one), trimmed.
    fn raw_object(&self, id: ObjectId) -> Result<Cow<'a, [u8]>, Error> {
        let not_found = || {
            damaged_msg(&format!(
                "object {} {} is not where the cross-reference data says",
                id.0, id.1
            ))
        };
        match self.doc.reference_table.get(id.0) {
            Some(XrefEntry::Normal { offset, generation }) if *generation == id.1 => {
                let start = usize::try_from(*offset).map_err(|_| not_found())?;
                let buf = self.pdf;
                let mut i = start;
                for expected in [
                    id.0.to_string().as_bytes(),
                    id.1.to_string().as_bytes(),
                    b"obj",
                ] {
                    i = skip_ws(buf, i);
                    let end = token_end(buf, i);
                    if buf.get(i..end) != Some(expected) {
                        return Err(not_found());
                    }
                    i = end;
                }
                let span = value_span(buf, i, 0).map_err(|e| lex_error(id, e))?;
                let after = skip_ws(buf, span.end);
                if buf.get(after..).is_some_and(|r| r.starts_with(b"stream")) {
                    return Err(Error::PdfUnsupported(format!(
                        "object {} {} is a stream where a dictionary or array is expected",
                        id.0, id.1
                    )));
                }
                Ok(Cow::Borrowed(&buf[span]))
            }
            Some(XrefEntry::Compressed { container, .. }) if id.1 == 0 => {
                let stream = self
                    .doc
                    .get_object((*container, 0))
                    .and_then(Object::as_stream)
                    .map_err(damaged)?;
                let content = stream
                    .get_plain_content_with_limit(lopdf::DEFAULT_MAX_DECOMPRESSED_SIZE)
                    .map_err(damaged)?;
                let count = stream
                    .dict
                    .get(b"N")
                    .and_then(Object::as_i64)
                    .map_err(damaged)?;
                let first = stream
                    .dict
                    .get(b"First")
                    .and_then(Object::as_i64)
                    .ok()
                    .and_then(|f| usize::try_from(f).ok())
                    .ok_or_else(not_found)?;
                let mut i = 0;
                for _ in 0..count {
                    let (number, end) = integer_at(&content, i).ok_or_else(not_found)?;
                    let (offset, end) = integer_at(&content, end).ok_or_else(not_found)?;
                    i = end;
                    if number == u64::from(id.0) {
                        let start = usize::try_from(offset)
                            .ok()
                            .and_then(|o| o.checked_add(first))
                            .ok_or_else(not_found)?;
                        let span = value_span(&content, start, 0).map_err(|e| lex_error(id, e))?;
                        return Ok(Cow::Owned(content[span].to_vec()));
                    }
                }
                Err(not_found())
            }
            _ => Err(not_found()),
        }
    }

    /// Every terminal form field under the catalog's /AcroForm /Fields.
    fn fields(&self) -> Result<Vec<Field>, Error> {
        let doc = &self.doc;
        let catalog = doc.get_dictionary(self.catalog_id()?).map_err(damaged)?;
        let Ok(form) = catalog.get(b"AcroForm") else {
            return Ok(Vec::new());
        };
        let form = match doc.dereference(form).map_err(damaged)?.1 {
            Object::Dictionary(d) => d,
            Object::Null => return Ok(Vec::new()),
            _ => return Err(damaged_msg("/AcroForm is not a dictionary")),
        };
        let Ok(fields) = form.get(b"Fields") else {
            return Ok(Vec::new());
        };
        let fields = doc
            .dereference(fields)
            .and_then(|(_, o)| o.as_array())
            .map_err(|_| damaged_msg("/AcroForm /Fields is not an array"))?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for f in fields {
            self.walk_field(f, "", None, 0, &mut seen, &mut out)?;
        }
        Ok(out)
    }

    fn walk_field(
        &self,
        field: &Object,
        parent_name: &str,
        inherited_type: Option<&[u8]>,
        depth: usize,
        seen: &mut BTreeSet<ObjectId>,
        out: &mut Vec<Field>,
    ) -> Result<(), Error> {
        let Object::Reference(id) = field else {
            return Err(damaged_msg("a form field is not an indirect object"));
        };
        if depth > MAX_FIELD_DEPTH || !seen.insert(*id) {
            return Err(damaged_msg("the form field tree loops or is too deep"));
        }
        let dict = self.doc.get_dictionary(*id).map_err(damaged)?;
        let partial = dict
            .get(b"T")
            .ok()
            .and_then(|t| lopdf::decode_text_string(t).ok());
        let name = match (&partial, parent_name) {
            (Some(p), "") => p.clone(),
            (Some(p), parent) => format!("{parent}.{p}"),
            (None, parent) => parent.to_string(),
        };
        let field_type = dict
            .get(b"FT")
            .and_then(Object::as_name)
            .ok()
            .or(inherited_type);
        // Kids that have a /T are fields; kids without are this field's widgets.
        let kids: Vec<&Object> = dict
            .get(b"Kids")
            .and_then(|k| self.doc.dereference(k))
            .and_then(|(_, k)| k.as_array())
            .map(|k| k.iter().collect())
            .unwrap_or_default();
        let field_kids: Vec<&Object> = kids
            .into_iter()
            .filter(|k| {
                k.as_reference()
                    .and_then(|r| self.doc.get_dictionary(r))
                    .is_ok_and(|d| d.has(b"T"))
            })
            .collect();
        if !field_kids.is_empty() {
            for kid in field_kids {
                self.walk_field(kid, &name, field_type, depth + 1, seen, out)?;
            }
            return Ok(());
        }
        let signature = match (field_type, dict.get(b"V")) {
            (Some(b"Sig"), Ok(Object::Reference(v))) => match self.doc.get_object(*v) {
                Ok(Object::Dictionary(d)) => Some((*v, d.clone())),
                _ => {
                    return Err(Error::PdfSignatureMalformed {
                        field: name,
                        detail: "/V is not a signature dictionary".into(),
                    });
                }
            },
            (Some(b"Sig"), Ok(Object::Dictionary(d))) => Some((*id, d.clone())),
            _ => None,
        };
        out.push(Field { name, signature });
        Ok(())
    }

    /// Reads and checks one signature dictionary (held by object `container`).
    fn read_signature(
        &self,
        field: &str,
        container: ObjectId,
        sig: &Dictionary,
    ) -> Result<PdfSignature, Error> {
        let malformed = |detail: String| Error::PdfSignatureMalformed {
            field: field.to_string(),
            detail,
        };
        let pdf = self.pdf;
        let numbers: Vec<i64> = sig
            .get(b"ByteRange")
            .and_then(Object::as_array)
            .map_err(|_| malformed("no /ByteRange array".into()))?
            .iter()
            .map(|n| n.as_i64().ok())
            .collect::<Option<_>>()
            .ok_or_else(|| malformed("/ByteRange holds something other than integers".into()))?;
        let byte_range: [usize; 4] = numbers
            .iter()
            .map(|n| usize::try_from(*n).ok())
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                malformed(format!(
                    "/ByteRange {numbers:?} is not four non-negative integers"
                ))
            })?;
        let [start, first_len, second_start, second_len] = byte_range;
        if start != 0 {
            return Err(malformed(format!(
                "/ByteRange starts at {start}, not at the beginning of the file"
            )));
        }
        if second_start < first_len.saturating_add(2) {
            return Err(malformed(format!(
                "/ByteRange ranges 0..{first_len} and {second_start}.. overlap or leave no room for /Contents"
            )));
        }
        let signed_len = second_start
            .checked_add(second_len)
            .filter(|end| *end <= pdf.len())
            .ok_or_else(|| {
                malformed(format!(
                    "/ByteRange reaches byte {}, past the end of the file ({} bytes)",
                    second_start.saturating_add(second_len),
                    pdf.len()
                ))
            })?;
        let gap = &pdf[first_len..second_start];
        let hex = gap
            .strip_prefix(b"<")
            .and_then(|g| g.strip_suffix(b">"))
            .filter(|h| h.len() % 2 == 0 && h.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| {
                malformed("the gap in /ByteRange is not exactly a hex string <…>".into())
            })?;
        let contents = decode_hex(hex);
        let declared = sig
            .get(b"Contents")
            .and_then(Object::as_str)
            .map_err(|_| malformed("no /Contents string".into()))?;
        if contents != declared {
            return Err(malformed(
                "the gap in /ByteRange is not this signature's /Contents".into(),
            ));
        }
        // The gap must lie inside the object that holds the dictionary.
        let inside = match self.doc.reference_table.get(container.0) {
            Some(XrefEntry::Normal { offset, .. }) => usize::try_from(*offset)
                .ok()
                .filter(|o| *o < first_len)
                .is_some_and(|o| !contains(&pdf[o..first_len], b"endobj")),
            _ => false,
        };
        if !inside {
            return Err(malformed(
                "the gap in /ByteRange lies outside the signature dictionary".into(),
            ));
        }
        let cms_der = strip_padding(&contents).map_err(malformed)?;
        let sub_filter = sig
            .get(b"SubFilter")
            .and_then(Object::as_name)
            .map_err(|_| malformed("no /SubFilter".into()))?;
        let signing_time = match sig.get(b"M") {
            Ok(m) => Some(
                m.as_str()
                    .ok()
                    .and_then(parse_pdf_date)
                    .ok_or_else(|| malformed("/M is not a PDF date".into()))?,
            ),
            Err(_) => None,
        };
        let text = |key: &[u8]| {
            sig.get(key)
                .ok()
                .and_then(|t| lopdf::decode_text_string(t).ok())
        };
        let mut hasher = Sha256::new();
        hasher.update(&pdf[..first_len]);
        hasher.update(&pdf[second_start..signed_len]);
        Ok(PdfSignature {
            field_name: field.to_string(),
            byte_range,
            cms_der: cms_der.to_vec(),
            digest: hasher.finalize().into(),
            covers_whole_file: signed_len == pdf.len(),
            signed_len,
            sub_filter: String::from_utf8_lossy(sub_filter).into_owned(),
            signing_time,
            signer_name: text(b"Name"),
            reason: text(b"Reason"),
        })
    }

    /// The new trailer's entries besides /Size and /Prev (and, for a stream, its own).
    fn update_trailer(&self, opts: &PadesOptions, field_name: &str) -> Result<Vec<u8>, Error> {
        let mut out = b"/Root ".to_vec();
        out.extend_from_slice(&reference(self.catalog_id()?));
        if let Ok(info) = self.doc.trailer.get(b"Info") {
            out.extend_from_slice(b" /Info ");
            write_object(&mut out, info);
        }
        // ISO 32000-1 section 14.4: the first identifier stays, the second changes with
        // each update.
        let mut hasher = Sha256::new();
        hasher.update(self.pdf);
        hasher.update(opts.signing_time.unix_timestamp().to_be_bytes());
        hasher.update(field_name.as_bytes());
        let new_id = &hasher.finalize()[..16];
        let first = self
            .doc
            .trailer
            .get(b"ID")
            .and_then(Object::as_array)
            .ok()
            .and_then(|a| a.first())
            .and_then(|f| f.as_str().ok())
            .unwrap_or(new_id);
        out.extend_from_slice(b" /ID [<");
        out.extend_from_slice(&hex_upper(first));
        out.extend_from_slice(b"> <");
        out.extend_from_slice(&hex_upper(new_id));
        out.extend_from_slice(b">]");
        Ok(out)
    }
}

/// The objects an update rewrites or adds, by id, as value bytes.
struct Update<'l, 'a> {
    loaded: &'l Loaded<'a>,
    objects: BTreeMap<ObjectId, Vec<u8>>,
}

impl Update<'_, '_> {
    /// The object's bytes as this update has them so far.
    fn current(&self, id: ObjectId) -> Result<Vec<u8>, Error> {
        match self.objects.get(&id) {
            Some(edited) => Ok(edited.clone()),
            None => Ok(self.loaded.raw_object(id)?.into_owned()),
        }
    }

    /// Appends `item` to the array object `id`.
    fn push_to_array(&mut self, id: ObjectId, item: &[u8]) -> Result<(), Error> {
        let raw = self.current(id)?;
        if !raw.starts_with(b"[") {
            return Err(damaged_msg(&format!(
                "object {} {} should be an array",
                id.0, id.1
            )));
        }
        let edited = array_push(&raw, item);
        self.objects.insert(id, edited);
        Ok(())
    }

    /// The form dictionary `raw` (parsed: `form`) with the widget in /Fields and
    /// /SigFlags 3 (SignaturesExist, AppendOnly) added to its flags.
    fn edit_form(
        &mut self,
        raw: &[u8],
        form: &Dictionary,
        widget_ref: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut edited = match form.get(b"Fields") {
            Ok(Object::Reference(fields_id)) => {
                self.push_to_array(*fields_id, widget_ref)?;
                raw.to_vec()
            }
            _ => dict_push(raw, b"Fields", widget_ref)?,
        };
        let flags = form
            .get(b"SigFlags")
            .and_then(|f| self.loaded.doc.dereference(f))
            .and_then(|(_, f)| f.as_i64())
            .unwrap_or(0);
        edited = dict_set(&edited, b"SigFlags", (flags | 3).to_string().as_bytes())?;
        Ok(edited)
    }
}

/// The signature dictionary with zeros where the ByteRange numbers and the CMS go, and
/// where those two are in it.
fn signature_dictionary(
    opts: &PadesOptions,
    contents_len: usize,
) -> Result<(Vec<u8>, usize, usize), Error> {
    let mut d =
        b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /Name ".to_vec();
    d.extend_from_slice(&pdf_text(&opts.signer_name));
    d.extend_from_slice(b" /M ");
    d.extend_from_slice(&pdf_text(&pdf_date(opts.signing_time)?));
    if let Some(reason) = &opts.reason {
        d.extend_from_slice(b" /Reason ");
        d.extend_from_slice(&pdf_text(reason));
    }
    d.extend_from_slice(b" /ByteRange ");
    let byte_range_at = d.len();
    d.extend_from_slice(&byte_range_placeholder());
    d.extend_from_slice(b" /Contents ");
    let contents_at = d.len();
    d.push(b'<');
    d.resize(d.len() + 2 * contents_len, b'0');
    d.extend_from_slice(b"> >>");
    Ok((d, byte_range_at, contents_at))
}

/// `[0 0000000000 0000000000 0000000000]`: as long as the longest ByteRange.
fn byte_range_placeholder() -> Vec<u8> {
    let zeros = "0".repeat(BYTE_RANGE_DIGITS);
    format!("[0 {zeros} {zeros} {zeros}]").into_bytes()
}

/// A classic cross-reference section for `offsets` (object number → offset,
/// generation): one subsection per run of consecutive numbers.
fn write_xref_table(out: &mut Vec<u8>, offsets: &Offsets) {
    out.extend_from_slice(b"xref\n");
    for run in runs(offsets) {
        out.extend_from_slice(format!("{} {}\n", run[0].0, run.len()).as_bytes());
        for (_, (offset, generation)) in run {
            // Each entry exactly 20 bytes (ISO 32000-1 section 7.5.4).
            out.extend_from_slice(format!("{offset:010} {generation:05} n \n").as_bytes());
        }
    }
}

/// A cross-reference stream object `id` (ISO 32000-1 section 7.5.8) for `offsets`,
/// which include its own, uncompressed.
fn write_xref_stream(out: &mut Vec<u8>, id: u32, offsets: &Offsets, trailer: &[u8], prev: usize) {
    let max = offsets.values().map(|(o, _)| *o).max().unwrap_or(0);
    let width = (1..=8).find(|w| max < 1usize << (8 * w)).unwrap_or(8);
    let mut data = Vec::new();
    let mut index = String::new();
    for run in runs(offsets) {
        index.push_str(&format!("{} {} ", run[0].0, run.len()));
        for (_, (offset, generation)) in run {
            data.push(1);
            data.extend_from_slice(&offset.to_be_bytes()[8 - width..]);
            data.extend_from_slice(&generation.to_be_bytes());
        }
    }
    let size = offsets.keys().next_back().map_or(id, |m| m + 1);
    out.extend_from_slice(
        format!(
            "{id} 0 obj\n<< /Type /XRef /Size {size} /W [1 {width} 2] /Index [{}] /Prev {prev} ",
            index.trim_end()
        )
        .as_bytes(),
    );
    out.extend_from_slice(trailer);
    out.extend_from_slice(format!(" /Length {} >>\nstream\r\n", data.len()).as_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\nendstream\nendobj\n");
}

/// `offsets` cut into runs of consecutive object numbers.
fn runs(offsets: &Offsets) -> Vec<Vec<(u32, (usize, u16))>> {
    let mut runs: Vec<Vec<(u32, (usize, u16))>> = Vec::new();
    for (&number, &entry) in offsets {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|(n, _)| n + 1 == number) => {
                run.push((number, entry));
            }
            _ => runs.push(vec![(number, entry)]),
        }
    }
    runs
}

/// The offset that the file's last `startxref` names, which must come with `%%EOF` in the
/// last [`TAIL`] bytes.
fn find_startxref(pdf: &[u8]) -> Result<usize, Error> {
    let tail_start = pdf.len().saturating_sub(TAIL);
    let tail = &pdf[tail_start..];
    let at = rfind(tail, b"startxref").ok_or(Error::PdfTruncated)?;
    let after = &tail[at + b"startxref".len()..];
    if !contains(after, b"%%EOF") {
        return Err(Error::PdfTruncated);
    }
    let (offset, _) = integer_at(after, 0)
        .ok_or_else(|| damaged_msg("startxref is not followed by an offset"))?;
    usize::try_from(offset)
        .ok()
        .filter(|o| *o < pdf.len())
        .ok_or_else(|| damaged_msg("startxref points past the end of the file"))
}

/// Whether the trailer area mentions /Encrypt (for a PDF that did not load).
fn has_encrypt(pdf: &[u8]) -> bool {
    let tail = &pdf[pdf.len().saturating_sub(16 * TAIL)..];
    contains(tail, b"/Encrypt")
}

/// The DER value at the start of `contents`, after checking that only zeros follow it.
fn strip_padding(contents: &[u8]) -> Result<&[u8], String> {
    let (tag, first_len) = match contents {
        [tag, len, ..] => (*tag, *len),
        _ => return Err("/Contents is empty".into()),
    };
    if tag != 0x30 {
        return Err(format!(
            "/Contents does not hold a CMS (it starts with 0x{tag:02x}, not a SEQUENCE)"
        ));
    }
    let (header, len) = match first_len {
        0x80 => {
            return Err("/Contents holds BER with an indefinite length, not DER".into());
        }
        n if n < 0x80 => (2, usize::from(n)),
        n => {
            let count = usize::from(n & 0x7f);
            let bytes = contents
                .get(2..2 + count)
                .filter(|_| count <= 4)
                .ok_or("/Contents holds a DER length that is too long")?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (2 + count, len)
        }
    };
    let end = header + len;
    let der = contents.get(..end).ok_or_else(|| {
        format!(
            "the CMS in /Contents is cut short ({end} bytes declared, {} present)",
            contents.len()
        )
    })?;
    if contents[end..].iter().any(|b| *b != 0) {
        return Err("/Contents has bytes other than zero padding after its CMS".into());
    }
    Ok(der)
}

/// `D:YYYYMMDDHHmmSS+00'00'` in UTC (ISO 32000-1 section 7.9.4).
fn pdf_date(t: OffsetDateTime) -> Result<String, Error> {
    let t = t.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return Err(Error::TimeOutOfRange(t));
    }
    Ok(format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Reads a PDF date `D:YYYY[MM[DD[HH[mm[SS[O[HH['mm[']]]]]]]]]`, O being `+`, `-` or `Z`
/// (no offset read as UTC).
fn parse_pdf_date(s: &[u8]) -> Option<OffsetDateTime> {
    let s = std::str::from_utf8(s).ok()?;
    let s = s.strip_prefix("D:").unwrap_or(s);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits < 4 || digits % 2 != 0 || digits > 14 {
        return None;
    }
    let field = |i: usize, default: u8| -> Option<u8> {
        if i + 2 <= digits {
            s.get(i..i + 2)?.parse().ok()
        } else {
            Some(default)
        }
    };
    let year: i32 = s.get(..4)?.parse().ok()?;
    let month = time::Month::try_from(field(4, 1)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, field(6, 1)?).ok()?;
    let clock = time::Time::from_hms(field(8, 0)?, field(10, 0)?, field(12, 0)?).ok()?;
    let rest = &s[digits..];
    let offset = match rest.as_bytes().first() {
        None | Some(b'Z') => time::UtcOffset::UTC,
        Some(sign @ (b'+' | b'-')) => {
            let nums: Vec<i8> = rest[1..]
                .split('\'')
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let (h, m) = match nums.as_slice() {
                [h] => (*h, 0),
                [h, m] => (*h, *m),
                _ => return None,
            };
            let (h, m) = if *sign == b'-' { (-h, -m) } else { (h, m) };
            time::UtcOffset::from_hms(h, m, 0).ok()?
        }
        Some(_) => return None,
    };
    Some(time::PrimitiveDateTime::new(date, clock).assume_offset(offset))
}

/// A text string: literal if ASCII, else UTF-16BE with a byte order mark (as lopdf
/// writes them).
fn pdf_text(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_object(&mut out, &lopdf::text_string(s));
    out
}

fn write_object(out: &mut Vec<u8>, object: &Object) {
    // Writing to a Vec cannot fail.
    let _ = Writer::write_object(out, object);
}

fn reference(id: ObjectId) -> Vec<u8> {
    format!("{} {} R", id.0, id.1).into_bytes()
}

fn hex_upper(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .collect()
}

/// Hex digits (checked by the caller) to bytes.
fn decode_hex(hex: &[u8]) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c.to_ascii_uppercase().wrapping_sub(b'A').wrapping_add(10),
    };
    hex.chunks_exact(2)
        .map(|p| (digit(p[0]) << 4) | digit(p[1]))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn damaged(e: impl std::fmt::Display) -> Error {
    Error::PdfDamaged(e.to_string())
}

fn damaged_msg(msg: &str) -> Error {
    Error::PdfDamaged(msg.to_string())
}

fn lex_error(id: ObjectId, e: &'static str) -> Error {
    Error::PdfDamaged(format!("object {} {}: {e}", id.0, id.1))
}

// ---------------------------------------------------------------------------------------
// Raw object bytes: just enough of the PDF syntax (ISO 32000-1 section 7.2, 7.3) to find
// where a value ends and where a dictionary's entries are, so that one entry can be
// edited and every other byte kept.
// ---------------------------------------------------------------------------------------

fn is_ws(b: u8) -> bool {
    matches!(b, b'\0' | b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(b: u8) -> bool {
    !is_ws(b) && !is_delimiter(b)
}

/// The position after white space and comments from `i`.
fn skip_ws(buf: &[u8], mut i: usize) -> usize {
    loop {
        while buf.get(i).is_some_and(|b| is_ws(*b)) {
            i += 1;
        }
        if buf.get(i) == Some(&b'%') {
            while buf.get(i).is_some_and(|b| *b != b'\r' && *b != b'\n') {
                i += 1;
            }
        } else {
            return i;
        }
    }
}

/// The end of the run of regular characters at `i`.
fn token_end(buf: &[u8], mut i: usize) -> usize {
    while buf.get(i).is_some_and(|b| is_regular(*b)) {
        i += 1;
    }
    i
}

/// An unsigned integer token at (or after white space from) `i`, and where it ends.
fn integer_at(buf: &[u8], i: usize) -> Option<(u64, usize)> {
    let start = skip_ws(buf, i);
    let end = token_end(buf, start);
    let token = buf.get(start..end)?;
    if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((std::str::from_utf8(token).ok()?.parse().ok()?, end))
}

/// The span of the value that starts at (or after white space from) `i`; an indirect
/// reference `n g R` counts as one value.
fn value_span(buf: &[u8], i: usize, depth: usize) -> Result<Range<usize>, &'static str> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply");
    }
    let start = skip_ws(buf, i);
    let first = *buf.get(start).ok_or("ends inside a value")?;
    let end = match first {
        b'<' if buf.get(start + 1) == Some(&b'<') => {
            let mut j = start + 2;
            loop {
                j = skip_ws(buf, j);
                if buf.get(j..j + 2) == Some(b">>") {
                    break j + 2;
                }
                if buf.get(j) != Some(&b'/') {
                    return Err("a dictionary key is not a name");
                }
                j = value_span(buf, j, depth + 1)?.end;
                j = value_span(buf, j, depth + 1)?.end;
            }
        }
        b'<' => {
            let close = buf[start..]
                .iter()
                .position(|b| *b == b'>')
                .ok_or("a hex string does not end")?;
            start + close + 1
        }
        b'[' => {
            let mut j = start + 1;
            loop {
                j = skip_ws(buf, j);
                if buf.get(j) == Some(&b']') {
                    break j + 1;
                }
                j = value_span(buf, j, depth + 1)?.end;
            }
        }
        b'(' => {
            let mut j = start + 1;
            let mut open = 1;
            while open > 0 {
                match buf.get(j).ok_or("a string does not end")? {
                    b'\\' => j += 1,
                    b'(' => open += 1,
                    b')' => open -= 1,
                    _ => {}
                }
                j += 1;
            }
            j
        }
        b'/' => token_end(buf, start + 1),
        b if is_regular(b) => {
            let end = token_end(buf, start);
            // `n g R`: look past two more tokens.
            let reference = integer_at(buf, start).and_then(|(_, e1)| {
                let (_, e2) = integer_at(buf, e1)?;
                let r = skip_ws(buf, e2);
                let after = buf.get(r + 1).copied();
                (buf.get(r) == Some(&b'R') && !after.is_some_and(is_regular)).then_some(r + 1)
            });
            reference.unwrap_or(end)
        }
        _ => return Err("unexpected delimiter"),
    };
    Ok(start..end)
}

/// A dictionary entry: the key without `/`, escapes decoded, and the span of the value.
type Entry = (Vec<u8>, Range<usize>);

/// A dictionary's entries, in order.
fn dict_entries(raw: &[u8]) -> Result<Vec<Entry>, Error> {
    let bad = |e: &str| damaged_msg(&format!("an object to update: {e}"));
    let start = skip_ws(raw, 0);
    if raw.get(start..start + 2) != Some(b"<<") {
        return Err(bad("not a dictionary"));
    }
    let mut entries = Vec::new();
    let mut j = start + 2;
    loop {
        j = skip_ws(raw, j);
        if raw.get(j..j + 2) == Some(b">>") {
            return Ok(entries);
        }
        let key = value_span(raw, j, 1).map_err(bad)?;
        if raw.get(key.start) != Some(&b'/') {
            return Err(bad("a dictionary key is not a name"));
        }
        let value = value_span(raw, key.end, 1).map_err(bad)?;
        entries.push((decode_name(&raw[key.start + 1..key.end]), value.clone()));
        j = value.end;
    }
}

/// A name's bytes with `#xx` escapes decoded.
fn decode_name(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while let Some(&b) = name.get(i) {
        let escaped = name
            .get(i + 1..i + 3)
            .filter(|h| b == b'#' && h.iter().all(u8::is_ascii_hexdigit));
        match escaped {
            Some(h) => {
                out.extend(decode_hex(h));
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The span of `key`'s value in the dictionary `raw`, if it has one.
fn dict_value(raw: &[u8], key: &[u8]) -> Result<Option<Range<usize>>, Error> {
    Ok(dict_entries(raw)?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v))
}

/// `raw` with `span` replaced by `with`.
fn splice(raw: &[u8], span: Range<usize>, with: &[u8]) -> Vec<u8> {
    [&raw[..span.start], with, &raw[span.end..]].concat()
}

/// The dictionary `raw` with `key` set to `value`: replaced where present, else added
/// before the closing `>>`.
fn dict_set(raw: &[u8], key: &[u8], value: &[u8]) -> Result<Vec<u8>, Error> {
    let entries = dict_entries(raw)?;
    let mut out = raw.to_vec();
    let mut found = false;
    // From the end, so earlier spans stay valid (a key may occur twice in bad files).
    for (_, span) in entries.iter().rev().filter(|(k, _)| k == key) {
        out = splice(&out, span.clone(), value);
        found = true;
    }
    if !found {
        let close = rfind(&out, b">>").ok_or_else(|| damaged_msg("a dictionary does not end"))?;
        let mut entry = b" /".to_vec();
        entry.extend_from_slice(key);
        entry.push(b' ');
        entry.extend_from_slice(value);
        entry.push(b' ');
        out = splice(&out, close..close, &entry);
    }
    Ok(out)
}

/// The dictionary `raw` with `item` appended to the inline array under `key` (created
/// if absent or null).
fn dict_push(raw: &[u8], key: &[u8], item: &[u8]) -> Result<Vec<u8>, Error> {
    let array = match dict_value(raw, key)? {
        Some(span) if raw[span.clone()].starts_with(b"[") => array_push(&raw[span], item),
        Some(span) if &raw[span.clone()] != b"null" => {
            return Err(damaged_msg(&format!(
                "/{} is neither an array nor a reference to one",
                String::from_utf8_lossy(key)
            )));
        }
        _ => [b"[".as_slice(), item, b"]"].concat(),
    };
    dict_set(raw, key, &array)
}

/// The array `raw` (`[…]`) with `item` appended.
fn array_push(raw: &[u8], item: &[u8]) -> Vec<u8> {
    let close = raw.len() - 1;
    [&raw[..close], b" ", item, b"]"].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_spans() {
        let cases: [(&[u8], &[u8]); 9] = [
            (b" 12 0 R /X", b"12 0 R"),
            (b"12 0 obj", b"12"),
            (b"[1 2 3] x", b"[1 2 3]"),
            (b"[1 0 R 2 0 R]", b"[1 0 R 2 0 R]"),
            (
                b"<< /A (x\\)y(z)) /B <</C [<ab>]>> >>rest",
                b"<< /A (x\\)y(z)) /B <</C [<ab>]>> >>",
            ),
            (b"/Name#20x/Next", b"/Name#20x"),
            (b"% comment\r\n595.303937007874 ", b"595.303937007874"),
            (b"<00FF>>", b"<00FF>"),
            (b"true]", b"true"),
        ];
        for (input, want) in cases {
            let span = value_span(input, 0, 0).unwrap();
            assert_eq!(&input[span], want, "{}", String::from_utf8_lossy(input));
        }
        for bad in [
            b"(open".as_slice(),
            b"[1 2",
            b"<< /A 1",
            b"<< 1 2 >>",
            b")",
            b"",
        ] {
            assert!(
                value_span(bad, 0, 0).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = [b"[".repeat(200), b"]".repeat(200)].concat();
        assert!(value_span(&deep, 0, 0).is_err());
    }

    /// Every other byte of the dictionary stays as written, long reals included.
    #[test]
    fn dict_edits_keep_other_bytes() {
        let page = b"<</Type/Page/MediaBox[ 0 0 595.303937007874 841.889763779528 ]/Parent 2 0 R>>";
        let edited = dict_push(page, b"Annots", b"9 0 R").unwrap();
        assert_eq!(
            edited,
            b"<</Type/Page/MediaBox[ 0 0 595.303937007874 841.889763779528 ]/Parent 2 0 R /Annots [9 0 R] >>"
        );
        let edited = dict_push(&edited, b"Annots", b"10 0 R").unwrap();
        assert!(contains(&edited, b"/Annots [9 0 R 10 0 R]"));
        let with_escape = b"<< /Ann#6fts [1 0 R] /SigFlags 1 >>";
        let edited = dict_push(with_escape, b"Annots", b"2 0 R").unwrap();
        assert_eq!(edited, b"<< /Ann#6fts [1 0 R 2 0 R] /SigFlags 1 >>");
        let edited = dict_set(&edited, b"SigFlags", b"3").unwrap();
        assert_eq!(edited, b"<< /Ann#6fts [1 0 R 2 0 R] /SigFlags 3 >>");
        assert!(dict_push(b"<< /Annots 5 >>", b"Annots", b"1 0 R").is_err());
        assert_eq!(
            dict_push(b"<< /Annots null >>", b"Annots", b"1 0 R").unwrap(),
            b"<< /Annots [1 0 R] >>"
        );
    }

    #[test]
    fn pdf_dates() {
        let t = time::macros::datetime!(2026-03-04 05:06:07 UTC);
        assert_eq!(pdf_date(t).unwrap(), "D:20260304050607+00'00'");
        assert_eq!(parse_pdf_date(b"D:20260304050607+00'00'"), Some(t));
        assert_eq!(parse_pdf_date(b"D:20260304050607Z"), Some(t));
        assert_eq!(parse_pdf_date(b"D:20260304050607"), Some(t));
        assert_eq!(parse_pdf_date(b"D:20260304070607+02'00'"), Some(t));
        assert_eq!(parse_pdf_date(b"D:20260304043607-00'30"), Some(t));
        assert_eq!(
            parse_pdf_date(b"D:2026"),
            Some(time::macros::datetime!(2026-01-01 00:00:00 UTC))
        );
        for bad in [
            &b"D:20261304050607Z"[..],
            b"D:202",
            b"yesterday",
            b"D:20260304050607X",
        ] {
            assert_eq!(
                parse_pdf_date(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn padding_is_stripped_by_der_length() {
        assert_eq!(
            strip_padding(&[0x30, 2, 5, 6, 0, 0]).unwrap(),
            &[0x30, 2, 5, 6]
        );
        let long = [&[0x30, 0x81, 0x80][..], &[1; 128], &[0; 10]].concat();
        assert_eq!(strip_padding(&long).unwrap().len(), 131);
        assert!(strip_padding(&[]).unwrap_err().contains("empty"));
        assert!(strip_padding(&[0x31, 0]).unwrap_err().contains("SEQUENCE"));
        assert!(
            strip_padding(&[0x30, 0x80, 0, 0])
                .unwrap_err()
                .contains("indefinite")
        );
        assert!(
            strip_padding(&[0x30, 5, 1])
                .unwrap_err()
                .contains("cut short")
        );
        assert!(
            strip_padding(&[0x30, 1, 1, 0, 7])
                .unwrap_err()
                .contains("padding")
        );
    }

    #[test]
    fn xref_runs_and_entries() {
        let offsets = BTreeMap::from([(3, (100, 0)), (4, (200, 0)), (9, (300, 1))]);
        let mut out = Vec::new();
        write_xref_table(&mut out, &offsets);
        assert_eq!(
            out,
            b"xref\n3 2\n0000000100 00000 n \n0000000200 00000 n \n9 1\n0000000300 00001 n \n"
        );
    }
}
