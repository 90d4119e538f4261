//! PAdES baseline B-B signing of PDFs made by other producers (fpdf2, qpdf, reportlab,
//! pyHanko: see tests/data/README.md), read back with `pades::signatures` and checked
//! with `verify::verify_pdf_signature`; pyHanko (tests/.venv-pki) validates what segl
//! signs. Bad input of every kind gets its own error.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestPki, TestSigner, ocsp_response, openssl_or_skip};
use segl_pki::Error;
use segl_pki::cms::{self, CmsSigner};
use segl_pki::ocsp::CertStatus;
use segl_pki::pades::{self, PadesOptions, PdfSignature};
use segl_pki::verify::{self, Revocation, VerifyError};
use time::{Duration, OffsetDateTime};

const PERSON_SERIAL: &[u8] = &[0x20, 0x01];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Whole seconds: /M and CMS times carry no fraction.
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds")
}

/// A person certificate (segl's profile) from the openssl-made CA, and its key.
struct Person {
    cert: Vec<u8>,
    key: TestSigner,
    cms: CmsSigner,
}

fn person(pki: &TestPki) -> Person {
    let at = now();
    let (cert, key) = pki.person(
        PERSON_SERIAL,
        at - Duration::hours(1),
        at + Duration::days(30),
    );
    let cms = CmsSigner::new(&cert, std::slice::from_ref(&pki.ca_der)).expect("CMS signer");
    Person { cert, key, cms }
}

fn options(field: Option<&str>) -> PadesOptions {
    PadesOptions {
        signing_time: now(),
        signer_name: "Kari Nordmann".into(),
        reason: Some("Godkjent – approved".into()),
        field_name: field.map(str::to_string),
    }
}

fn sign(pdf: &[u8], p: &Person, field: Option<&str>, ocsp: Option<&[u8]>) -> Vec<u8> {
    pades::sign_pdf(pdf, &options(field), &p.cms, &p.key, ocsp).expect("sign PDF")
}

fn verify(sig: &PdfSignature, roots: &[Vec<u8>]) -> Result<verify::Report, VerifyError> {
    verify::verify_pdf_signature(sig, roots, now())
}

/// The checks every signed output must pass: the input is a prefix, the last signature
/// covers the whole file and verifies to the test root, and its CMS has no signing-time.
fn check_signed(input: &[u8], output: &[u8], pki: &TestPki, count: usize) -> Vec<PdfSignature> {
    assert!(output.starts_with(input), "the original bytes are a prefix");
    let sigs = pades::signatures(output).expect("read signatures");
    assert_eq!(sigs.len(), count, "{sigs:#?}");
    let last = sigs.last().expect("a signature");
    assert!(last.covers_whole_file);
    assert_eq!(last.signed_len, output.len());
    assert_eq!(last.sub_filter, "ETSI.CAdES.detached");
    assert_eq!(last.signer_name.as_deref(), Some("Kari Nordmann"));
    assert_eq!(last.reason.as_deref(), Some("Godkjent – approved"));
    assert!(last.signing_time.is_some());
    let report = verify(last, std::slice::from_ref(&pki.root_der)).expect("valid signature");
    assert_eq!(
        Some(report.signing_time),
        last.signing_time,
        "the time is /M"
    );
    assert_eq!(report.chain.len(), 3, "{:?}", report.chain);
    // EN 319 142-1: no signing-time attribute in the CMS of a PAdES signature.
    assert!(matches!(
        cms::verify_detached(&last.cms_der, &last.digest),
        Err(Error::CmsMissingAttribute("signing-time"))
    ));
    for s in &sigs[..count - 1] {
        assert!(!s.covers_whole_file, "{}", s.field_name);
    }
    sigs
}

#[test]
fn signs_a_pdf_with_a_classic_xref_table() {
    if !openssl_or_skip("signs_a_pdf_with_a_classic_xref_table") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let input = fixture("fpdf2-classic.pdf");
    let before = pades::inspect(&input).expect("inspect");
    assert_eq!((before.page_count, before.signature_count), (2, 0));
    assert!(!before.xref_stream);
    assert_eq!(before.version, "1.3");

    let signed = sign(&input, &p, None, None);
    let sigs = check_signed(&input, &signed, &pki, 1);
    assert_eq!(sigs[0].field_name, "Signature1");
    assert_eq!(sigs[0].byte_range[0], 0);
    assert_eq!(
        sigs[0].byte_range[2] + sigs[0].byte_range[3],
        signed.len(),
        "{:?}",
        sigs[0].byte_range
    );
    let after = pades::inspect(&signed).expect("inspect signed");
    assert_eq!((after.page_count, after.signature_count), (2, 1));
    assert!(!after.xref_stream, "a table follows a table");
    let tail = String::from_utf8_lossy(&signed[input.len()..]);
    assert!(
        tail.contains("\nxref\n") && tail.contains("/Prev "),
        "{tail}"
    );
    assert!(tail.contains("/F 132 /Rect [0 0 0 0]"), "{tail}");
    assert!(tail.contains("/SigFlags 3"), "{tail}");
    qpdf_check(&signed);

    // The widget is in page 1's /Annots, the field in the new /AcroForm.
    let doc = lopdf::Document::load_mem(&signed).expect("lopdf reads it");
    let page1 = doc.get_pages()[&1];
    let annots = doc.get_page_annotations(page1).expect("annotations");
    assert_eq!(annots.len(), 1);
    assert_eq!(annots[0].get(b"FT").unwrap().as_name().unwrap(), b"Sig");
}

#[test]
fn signs_a_pdf_with_xref_and_object_streams() {
    if !openssl_or_skip("signs_a_pdf_with_xref_and_object_streams") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let input = fixture("qpdf-xref-stream.pdf");
    assert!(pades::inspect(&input).expect("inspect").xref_stream);

    let signed = sign(&input, &p, Some("Approval"), None);
    let sigs = check_signed(&input, &signed, &pki, 1);
    assert_eq!(sigs[0].field_name, "Approval");
    let info = pades::inspect(&signed).expect("inspect signed");
    assert!(
        info.xref_stream,
        "a cross-reference stream follows a stream"
    );
    assert_eq!(info.signature_count, 1);
    let tail = String::from_utf8_lossy(&signed[input.len()..]);
    assert!(tail.contains("/Type /XRef"), "{tail}");
    assert!(!tail.contains("\nxref\n"), "{tail}");
    qpdf_check(&signed);
}

#[test]
fn second_signature_keeps_the_first_valid() {
    if !openssl_or_skip("second_signature_keeps_the_first_valid") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let input = fixture("fpdf2-classic.pdf");
    let once = sign(&input, &p, None, None);
    let twice = sign(&once, &p, None, None);
    let sigs = check_signed(&once, &twice, &pki, 2);
    assert_eq!(sigs[0].field_name, "Signature1");
    assert_eq!(sigs[1].field_name, "Signature2");
    assert_eq!(sigs[0].signed_len, once.len());
    let alone = &pades::signatures(&once).unwrap()[0];
    assert_eq!(
        (&sigs[0].cms_der, sigs[0].digest, sigs[0].byte_range),
        (&alone.cms_der, alone.digest, alone.byte_range)
    );
    verify(&sigs[0], std::slice::from_ref(&pki.root_der)).expect("the first stays valid");
    assert_eq!(pades::inspect(&twice).unwrap().signature_count, 2);

    // The same field name again is refused.
    assert!(matches!(
        pades::sign_pdf(&once, &options(Some("Signature1")), &p.cms, &p.key, None),
        Err(Error::PdfFieldExists(name)) if name == "Signature1"
    ));
    qpdf_check(&twice);
}

#[test]
fn signs_after_a_pyhanko_signature() {
    if !openssl_or_skip("signs_after_a_pyhanko_signature") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let input = fixture("pyhanko-signed.pdf");
    let theirs = pades::signatures(&input).expect("read pyHanko's signature");
    assert_eq!(theirs.len(), 1);
    assert!(theirs[0].covers_whole_file);
    assert_eq!(theirs[0].sub_filter, "ETSI.CAdES.detached");
    let pyhanko_root = pem_to_der(&fixture("pyhanko-root.pem"));
    let report = verify(&theirs[0], std::slice::from_ref(&pyhanko_root)).expect("pyHanko's");
    assert!(report.signer_subject.contains("fixture leaf"), "{report:?}");

    let signed = sign(&input, &p, None, None);
    let sigs = check_signed(&input, &signed, &pki, 2);
    assert_eq!(sigs[0].field_name, "Signature1");
    assert_eq!(sigs[1].field_name, "Signature2");
    verify(&sigs[0], std::slice::from_ref(&pyhanko_root)).expect("pyHanko's stays valid");
    assert!(matches!(
        verify(&sigs[0], std::slice::from_ref(&pki.root_der)),
        Err(VerifyError::UntrustedChain { .. })
    ));
}

#[test]
fn existing_form_is_extended_not_replaced() {
    if !openssl_or_skip("existing_form_is_extended_not_replaced") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let input = fixture("reportlab-form.pdf");
    let signed = sign(&input, &p, None, None);
    check_signed(&input, &signed, &pki, 1);
    qpdf_check(&signed);

    let doc = lopdf::Document::load_mem(&signed).expect("lopdf reads it");
    let form = doc
        .catalog()
        .unwrap()
        .get_deref(b"AcroForm", &doc)
        .unwrap()
        .as_dict()
        .unwrap();
    let names: Vec<String> = form
        .get_deref(b"Fields", &doc)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let field = doc.get_dictionary(f.as_reference().unwrap()).unwrap();
            lopdf::decode_text_string(field.get(b"T").unwrap()).unwrap()
        })
        .collect();
    assert_eq!(names, ["name", "Signature1"]);
    // The form's other entries (default appearance, resources) are still there.
    assert!(form.has(b"DA") || form.has(b"DR"), "{form:?}");
    assert_eq!(form.get(b"SigFlags").unwrap().as_i64().unwrap(), 3);

    assert!(matches!(
        pades::sign_pdf(&input, &options(Some("name")), &p.cms, &p.key, None),
        Err(Error::PdfFieldExists(name)) if name == "name"
    ));
}

#[test]
fn embedded_ocsp_response_is_read_back() {
    if !openssl_or_skip("embedded_ocsp_response_is_read_back") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let ocsp = ocsp_response(
        &pki,
        &pki.ocsp_der,
        &pki.ocsp_signer,
        PERSON_SERIAL,
        CertStatus::Good,
        now(),
    );
    let input = fixture("fpdf2-classic.pdf");
    let signed = sign(&input, &p, None, Some(&ocsp));
    let sigs = check_signed(&input, &signed, &pki, 1);
    let report = verify(&sigs[0], std::slice::from_ref(&pki.root_der)).unwrap();
    assert!(
        matches!(report.revocation, Revocation::Good { .. }),
        "{report:?}"
    );
    assert_eq!(report.signer_cert_der, p.cert);
}

#[test]
fn two_step_signing_and_contents_padding() {
    if !openssl_or_skip("two_step_signing_and_contents_padding") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let input = fixture("qpdf-xref-stream.pdf");
    let opts = options(None);
    let prepared = pades::prepare(&input, &opts, 4096).expect("prepare");
    assert_eq!(prepared.room(), 4096);
    assert_eq!(prepared.field_name(), "Signature1");
    let cms_der = p
        .cms
        .sign_pades(&p.key, prepared.digest(), None)
        .expect("CMS");
    assert!(cms_der.len() <= p.cms.pades_max_len(None).unwrap());
    let signed = prepared.clone().finish(&cms_der).expect("finish");
    let sigs = check_signed(&input, &signed, &pki, 1);
    // The zero padding after the DER is gone; the CMS is exactly what was signed.
    assert_eq!(sigs[0].cms_der, cms_der);
    assert_eq!(&sigs[0].digest, prepared.digest());
    assert_eq!(sigs[0].byte_range[2] - sigs[0].byte_range[1], 2 * 4096 + 2);

    for room in [0, pades::MAX_CONTENTS_LEN + 1] {
        assert!(matches!(
            pades::prepare(&input, &opts, room),
            Err(Error::Invalid(_))
        ));
    }
    let small = pades::prepare(&input, &opts, 100).expect("prepare");
    assert!(matches!(
        small.finish(&cms_der),
        Err(Error::PdfSignatureTooLarge { room: 100, .. })
    ));
    // A key that is not the certificate's is refused before anything is signed.
    assert!(matches!(
        pades::sign_pdf(&input, &opts, &p.cms, &pki.leaf1_signer, None),
        Err(Error::KeyMismatch(_))
    ));
}

/// A PAdES CMS has no signing-time: its time is /M, and without /M it has none. A CMS that
/// has the attribute all the same (CAdES habits) is read with it.
#[test]
fn pades_cms_signing_time_comes_from_the_dictionary() {
    if !openssl_or_skip("pades_cms_signing_time_comes_from_the_dictionary") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let digest = [7; 32];
    let at = now() - Duration::minutes(3);
    let pades_cms = p.cms.sign_pades(&p.key, &digest, None).unwrap();
    let read = cms::verify_detached_pades(&pades_cms, &digest, Some(at)).unwrap();
    assert_eq!(read.signing_time, at);
    assert!(matches!(
        cms::verify_detached_pades(&pades_cms, &digest, None),
        Err(Error::PdfNoSigningTime)
    ));
    let cades_cms = p.cms.sign(&p.key, &digest, at, None).unwrap();
    let read = cms::verify_detached_pades(&cades_cms, &digest, Some(now())).unwrap();
    assert_eq!(read.signing_time, at, "the CMS's own signing-time");
    assert!(matches!(
        cms::verify_detached_pades(&pades_cms, &[8; 32], Some(at)),
        Err(Error::CmsDigestMismatch)
    ));
}

/// The position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{} not found", String::from_utf8_lossy(needle)))
}

#[test]
fn tampering_inside_the_signed_range_is_detected() {
    if !openssl_or_skip("tampering_inside_the_signed_range_is_detected") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let input = fixture("fpdf2-classic.pdf");
    let signed = sign(&input, &p, None, None);
    let roots = std::slice::from_ref(&pki.root_der);

    // One byte of the original document (in the title), one of the signature dictionary.
    for needle in [&b"segl PAdES fixture"[..], b"Kari Nordmann"] {
        let mut tampered = signed.clone();
        tampered[find(&signed, needle)] ^= 0x01;
        let sigs = pades::signatures(&tampered).expect("still a PDF");
        assert!(
            matches!(verify(&sigs[0], roots), Err(VerifyError::DigestMismatch)),
            "{}",
            String::from_utf8_lossy(needle)
        );
    }

    // One hex digit of the CMS's own signature (near the end of the DER).
    let sig = &pades::signatures(&signed).unwrap()[0];
    let mut tampered = signed.clone();
    let last_digit = sig.byte_range[1] + 2 * sig.cms_der.len();
    tampered[last_digit] = if tampered[last_digit] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let sigs = pades::signatures(&tampered).expect("still a PDF");
    assert!(
        matches!(verify(&sigs[0], roots), Err(VerifyError::Cms(_))),
        "{:?}",
        verify(&sigs[0], roots)
    );

    // Bytes added after the signature: it no longer covers the whole file.
    let mut extended = signed.clone();
    extended.extend_from_slice(b"% appended\n");
    let sigs = pades::signatures(&extended).expect("still a PDF");
    assert!(!sigs[0].covers_whole_file);
    assert_eq!(sigs[0].signed_len, signed.len());
    verify(&sigs[0], roots).expect("the signed revision itself is intact");
}

/// `signed` with its /ByteRange numbers replaced by `numbers` (padded to the same width).
fn with_byte_range(signed: &[u8], numbers: &str) -> Vec<u8> {
    let start = find(signed, b"/ByteRange [") + b"/ByteRange [".len();
    let end = start + find(&signed[start..], b"]");
    assert!(numbers.len() <= end - start, "{numbers}");
    let mut out = signed.to_vec();
    out[start..end].copy_from_slice(format!("{numbers:<width$}", width = end - start).as_bytes());
    out
}

#[test]
fn malformed_byte_ranges_are_refused() {
    if !openssl_or_skip("malformed_byte_ranges_are_refused") {
        return;
    }
    let pki = TestPki::new();
    let p = person(&pki);
    let signed = sign(&fixture("fpdf2-classic.pdf"), &p, None, None);
    let [_, b, c, d] = pades::signatures(&signed).unwrap()[0].byte_range;
    let cases = [
        (format!("1 {b} {c} {d}"), "starts at 1"),
        (format!("0 {b} {} {d}", b + 1), "overlap"),
        (format!("0 {b} {} {d}", b - 10), "overlap"),
        (format!("0 {b} {c} {}", d + 1), "past the end"),
        (format!("0 {} {c} {d}", b - 1), "not exactly a hex string"),
        (format!("0 {} {c} {d}", b + 2), "not exactly a hex string"),
        (format!("0 {b} {c}"), "four non-negative integers"),
        (format!("0 {b} {c} {d} 0 0"), "four non-negative integers"),
        (format!("0 {b} {c} -{d}"), "four non-negative integers"),
        (format!("0 {b} {c} /D"), "other than integers"),
    ];
    for (numbers, says) in cases {
        let err = pades::signatures(&with_byte_range(&signed, &numbers)).unwrap_err();
        assert!(
            matches!(&err, Error::PdfSignatureMalformed { field, detail }
                if field == "Signature1" && detail.contains(says)),
            "[{numbers}]: {err}"
        );
    }
    // A gap that is a hex string, but not this dictionary's /Contents: the hex string of
    // the new trailer's /ID.
    let id = find(&signed[c..], b"/ID [<") + c + b"/ID [".len();
    let id_end = id + find(&signed[id..], b">") + 1;
    let err = pades::signatures(&with_byte_range(
        &signed,
        &format!("0 {id} {id_end} {}", signed.len() - id_end),
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("not this signature's /Contents"),
        "{err}"
    );
}

#[test]
fn bad_input_gets_precise_errors() {
    let pdf = fixture("fpdf2-classic.pdf");
    let mut wrong_startxref = pdf.clone();
    let at = wrong_startxref
        .windows(10)
        .rposition(|w| w == b"startxref\n")
        .unwrap()
        + 10;
    wrong_startxref[at] = if wrong_startxref[at] == b'9' {
        b'1'
    } else {
        b'9'
    };
    let mut garbled_object = pdf.clone();
    let obj = find(&pdf, b"2 0 obj");
    garbled_object[obj..obj + 7].copy_from_slice(b"garbage");

    type Expected = fn(&Error) -> bool;
    let cases: [(&str, Vec<u8>, Expected); 9] = [
        ("empty", Vec::new(), |e| matches!(e, Error::PdfEmpty)),
        ("not a PDF", b"hello, world\n".to_vec(), |e| {
            matches!(e, Error::NotPdf)
        }),
        ("JPEG", vec![0xff, 0xd8, 0xff, 0xe0, 0, 0x10], |e| {
            matches!(e, Error::NotPdf)
        }),
        ("truncated", pdf[..pdf.len() / 2].to_vec(), |e| {
            matches!(e, Error::PdfTruncated)
        }),
        ("header only", b"%PDF-1.7\n".to_vec(), |e| {
            matches!(e, Error::PdfTruncated)
        }),
        ("wrong startxref", wrong_startxref, |e| {
            matches!(e, Error::PdfDamaged(_))
        }),
        ("garbled object", garbled_object, |e| {
            matches!(e, Error::PdfDamaged(_))
        }),
        ("encrypted", fixture("qpdf-encrypted.pdf"), |e| {
            matches!(e, Error::PdfEncrypted)
        }),
        ("password", fixture("qpdf-encrypted-password.pdf"), |e| {
            matches!(e, Error::PdfEncrypted)
        }),
    ];
    for (what, bytes, expected) in cases {
        let err = pades::inspect(&bytes).unwrap_err();
        assert!(expected(&err), "inspect {what}: {err:?}");
        let err = pades::signatures(&bytes).unwrap_err();
        assert!(expected(&err), "signatures {what}: {err:?}");
        let err = pades::prepare(&bytes, &options(None), 1000).unwrap_err();
        assert!(expected(&err), "prepare {what}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(
        pades::signatures(&pdf).expect("an unsigned PDF").len(),
        0,
        "no signatures is an empty list"
    );
}

// ---------------------------------------------------------------------------------------
// pyHanko (tests/.venv-pki, installed by .ci/run) as an independent validator.
// ---------------------------------------------------------------------------------------

/// pyHanko's CLI, or None with a printed skip (a failure when CI is set).
fn pyhanko_or_skip(test: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/.venv-pki/bin/pyhanko");
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: pyHanko is required when CI is set ({} is missing; .ci/run installs it)",
            path.display()
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test}: no {} (python3 -m venv tests/.venv-pki && tests/.venv-pki/bin/pip install -r tests/pki/requirements.txt)",
        path.display()
    );
    None
}

/// `qpdf --check` when qpdf is installed (an independent check of the file structure).
fn qpdf_check(pdf: &[u8]) {
    let Ok(version) = Command::new("qpdf").arg("--version").output() else {
        if std::env::var_os("CI").is_some() {
            panic!("qpdf is required when CI is set");
        }
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = Command::new("qpdf")
        .arg("--check")
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "qpdf --check:\n{text}");
    assert!(
        text.contains("No syntax or stream encoding errors"),
        "{text}"
    );
}

/// Runs `pyhanko sign validate` on `pdf` with `trust` (PEM files) as roots, without
/// revocation checks (the test CA has no reachable responder); its output and status.
fn pyhanko_validate(pyhanko: &Path, dir: &Path, pdf: &[u8], trust: &[&Path]) -> (bool, String) {
    let file = dir.join("validate.pdf");
    std::fs::write(&file, pdf).unwrap();
    let mut cmd = Command::new(pyhanko);
    cmd.args([
        "sign",
        "validate",
        "--no-revocation-check",
        "--pretty-print",
        "--trust-replace",
    ]);
    for t in trust {
        cmd.arg("--trust").arg(t);
    }
    let out = cmd.arg(&file).output().expect("run pyhanko");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let (_, der) = der::pem::decode_vec(text.as_bytes()).expect("PEM");
    der
}

#[test]
fn pyhanko_validates_what_segl_signs() {
    if !openssl_or_skip("pyhanko_validates_what_segl_signs") {
        return;
    }
    let Some(pyhanko) = pyhanko_or_skip("pyhanko_validates_what_segl_signs") else {
        return;
    };
    let pki = TestPki::new();
    let p = person(&pki);
    let root = pki.dir.join("root.pem");
    let ocsp = ocsp_response(
        &pki,
        &pki.ocsp_der,
        &pki.ocsp_signer,
        PERSON_SERIAL,
        CertStatus::Good,
        now(),
    );
    for name in [
        "fpdf2-classic.pdf",
        "qpdf-xref-stream.pdf",
        "reportlab-form.pdf",
    ] {
        let signed = sign(&fixture(name), &p, None, Some(&ocsp));
        let (ok, text) = pyhanko_validate(&pyhanko, &pki.dir, &signed, &[&root]);
        assert!(ok, "{name}:\n{text}");
        assert_valid_by_pyhanko(&text, 1, name);

        // Twice signed: both signatures intact and trusted.
        let twice = sign(&signed, &p, None, None);
        let (ok, text) = pyhanko_validate(&pyhanko, &pki.dir, &twice, &[&root]);
        assert!(ok, "{name}, twice:\n{text}");
        assert_valid_by_pyhanko(&text, 2, name);

        // One byte changed inside the signed range: pyHanko refuses it.
        let mut tampered = signed.clone();
        tampered[find(&signed, b"Kari Nordmann")] ^= 0x01;
        let (ok, text) = pyhanko_validate(&pyhanko, &pki.dir, &tampered, &[&root]);
        assert!(!ok, "{name}, tampered: pyHanko accepted it:\n{text}");
        assert!(
            !text.contains("The signature is cryptographically sound"),
            "{text}"
        );
    }

    // Another root: intact but not trusted.
    let signed = sign(&fixture("fpdf2-classic.pdf"), &p, None, None);
    let other = data_dir().join("pyhanko-root.pem");
    let (ok, text) = pyhanko_validate(&pyhanko, &pki.dir, &signed, &[&other]);
    assert!(!ok, "untrusted root accepted:\n{text}");

    // After pyHanko's own signature: both valid, each with its root.
    let signed = sign(&fixture("pyhanko-signed.pdf"), &p, None, None);
    let (ok, text) = pyhanko_validate(&pyhanko, &pki.dir, &signed, &[&root, &other]);
    assert!(ok, "after pyHanko's signature:\n{text}");
    assert_valid_by_pyhanko(&text, 2, "pyhanko-signed.pdf");
}

/// pyHanko's pretty-printed report says, for `count` signatures, that each is intact,
/// trusted and at PAdES baseline B-B.
fn assert_valid_by_pyhanko(text: &str, count: usize, what: &str) {
    let intact = text
        .matches("The signature is cryptographically sound")
        .count();
    let trusted = text.matches("judged VALID").count();
    assert_eq!(intact, count, "{what}: intact signatures:\n{text}");
    assert_eq!(trusted, count, "{what}: trusted signatures:\n{text}");
    // pyHanko's difference analysis: what was added after an earlier signature is only
    // signing (the new field, widget, /Annots, /AcroForm).
    let later = text
        .matches("All modifications relate to signing and form filling operations")
        .count();
    assert_eq!(later, count - 1, "{what}: modifications:\n{text}");
}
