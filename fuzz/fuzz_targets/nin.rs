//! National identity numbers as typed into the login page or given as `login_hint`:
//! `segl_core::nin::Nin::parse` on arbitrary UTF-8. A number that parses must parse again
//! from its own digits to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segl_core::nin::Nin;

fuzz_target!(|s: &str| {
    if let Ok(nin) = Nin::parse(s) {
        assert_eq!(Nin::parse(nin.as_str()).as_ref(), Ok(&nin));
    }
});
