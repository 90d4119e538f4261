//! OCSP responses fetched from a responder or embedded in a signature:
//! `segl_pki::verify::parse_ocsp_response`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    let _ = segl_pki::verify::parse_ocsp_response(der);
});
