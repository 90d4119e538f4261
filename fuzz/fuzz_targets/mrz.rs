//! Machine-readable zones as typed or pasted into an eID order, followed by the order's
//! name after a `|` (a character no MRZ holds): `segl_core::mrz::Mrz::parse` on arbitrary
//! UTF-8, then `Mrz::check_against` with that name. An MRZ that parses must parse again
//! from its normalised text to the same value, and must match its own name and birth date.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segl_core::mrz::Mrz;
use segl_core::nin::Nin;

fuzz_target!(|s: &str| {
    // segl-fuzz has no direct `time` dependency; a national identity number's birth date
    // (1985-05-15) gives a `time::Date` to move to the two "today"s: one in the middle of a
    // century, one near its end, where the century rules turn.
    let Ok(base) = Nin::parse("15058500027").map(|n| n.birth_date()) else {
        return;
    };
    let (text, name) = s.split_once('|').unwrap_or((s, ""));
    for year in [2025, 2099] {
        let Ok(today) = base.replace_year(year) else {
            return;
        };
        if let Ok(mrz) = Mrz::parse(text, today) {
            assert_eq!(Mrz::parse(mrz.as_str(), today).as_ref(), Ok(&mrz));
            let own = format!("{} {}", mrz.given_names(), mrz.surname());
            let before_expiry = mrz.expiry_date();
            assert_eq!(
                mrz.check_against(&own, mrz.birth_date(), before_expiry),
                Ok(())
            );
            let _ = mrz.check_against(name, mrz.birth_date(), today);
        }
    }
});
