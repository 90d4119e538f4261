//! PDFs uploaded for signing or verification: `segl_pki::pades::inspect` and
//! `segl_pki::pades::signatures` (lopdf's parser and segl's own reading of raw objects,
//! byte ranges and /Contents).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|pdf: &[u8]| {
    let _ = segl_pki::pades::inspect(pdf);
    let _ = segl_pki::pades::signatures(pdf);
});
