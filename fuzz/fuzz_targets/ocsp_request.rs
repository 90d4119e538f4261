//! OCSP requests as the responder receives them (the body of a POST, or the decoded GET
//! path): `segl_pki::ocsp::parse_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|der: &[u8]| {
    let _ = segl_pki::ocsp::parse_request(der);
});
