//! Page texts in bokmål, nynorsk and English. The language comes from `ui_locales`, then
//! `Accept-Language`, then bokmål.

/// A supported language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// Norwegian bokmål.
    Nb,
    /// Norwegian nynorsk.
    Nn,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 tag.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Nb => "nb",
            Lang::Nn => "nn",
            Lang::En => "en",
        }
    }

    /// Parses a tag (`nb`, `nb-NO`, `no`, `nn`, `en-GB`, …).
    pub fn parse(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "nb" | "no" => Some(Lang::Nb),
            "nn" => Some(Lang::Nn),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The first supported language of a list of tags, in order.
    pub fn pick<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<Lang> {
        tags.into_iter().find_map(Lang::parse)
    }

    /// The texts.
    pub fn t(self) -> &'static Texts {
        match self {
            Lang::Nb => &NB,
            Lang::Nn => &NN,
            Lang::En => &EN,
        }
    }
}

/// Languages in `Accept-Language`, ordered by q-value.
pub fn accept_language(header: &str) -> Vec<String> {
    let mut tags: Vec<(f32, String)> = header
        .split(',')
        .filter_map(|part| {
            let mut it = part.split(';');
            let tag = it.next()?.trim().to_string();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            (!tag.is_empty()).then_some((q, tag))
        })
        .collect();
    tags.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    tags.into_iter().map(|(_, t)| t).collect()
}

/// Every text of the pages.
#[derive(Debug)]
pub struct Texts {
    pub title: &'static str,
    pub logging_in_to: &'static str,
    pub nin_label: &'static str,
    pub nin_hint: &'static str,
    pub next: &'static str,
    pub choose_method: &'static str,
    pub method_otp: &'static str,
    pub method_otp_hint: &'static str,
    pub choose_another: &'static str,
    pub otp_label: &'static str,
    pub otp_hint: &'static str,
    pub password_label: &'static str,
    pub log_in: &'static str,
    pub cancel: &'static str,
    pub done: &'static str,
    pub continue_to: &'static str,
    pub failed: &'static str,
    pub start_again: &'static str,
    pub error_title: &'static str,
    pub logged_out: &'static str,
    pub logged_out_text: &'static str,
    pub expires: &'static str,
    pub attempts_left: &'static str,
    pub language: &'static str,
    pub err_wrong_otp: &'static str,
    pub err_otp_used: &'static str,
    pub err_wrong_password: &'static str,
    pub err_device_blocked: &'static str,
    pub err_password_locked: &'static str,
    pub err_too_many: &'static str,
    pub err_expired: &'static str,
    pub err_nin: &'static str,
    pub err_other: &'static str,
    pub method_app: &'static str,
    pub method_app_hint: &'static str,
    pub open_app: &'static str,
    pub open_app_text: &'static str,
    pub verification_code: &'static str,
    pub verification_code_hint: &'static str,
    pub qr_text: &'static str,
    pub qr_alt: &'static str,
    pub app_waiting: &'static str,
    pub app_continue: &'static str,
    pub app_try_again: &'static str,
    pub app_request_text: &'static str,
    pub err_app_expired: &'static str,
    pub err_denied_in_app: &'static str,
    pub activate_title: &'static str,
    pub activate_code_text: &'static str,
    pub activate_qr_alt: &'static str,
    pub activate_opens: &'static str,
    pub activate_until: &'static str,
    pub activate_warning: &'static str,
    pub sign_title: &'static str,
    pub signing_for: &'static str,
    pub sign_text_label: &'static str,
    pub sign_documents: &'static str,
    pub sign_done_title: &'static str,
    pub sign_done_text: &'static str,
    pub sign_failed_text: &'static str,
    pub sign_closed_text: &'static str,
}

/// Bokmål.
pub static NB: Texts = Texts {
    title: "Logg inn med segl",
    logging_in_to: "Du logger inn hos",
    nin_label: "Fødselsnummer (11 siffer)",
    nin_hint: "Fødselsnummer eller D-nummer.",
    next: "Neste",
    choose_method: "Velg innloggingsmetode",
    method_otp: "Kodebrikke og passord",
    method_otp_hint: "Engangskode fra kodebrikken, deretter passord.",
    choose_another: "Velg en annen metode",
    otp_label: "Engangskode fra kodebrikken",
    otp_hint: "Trykk på knappen på kodebrikken og skriv inn koden.",
    password_label: "Personlig passord",
    log_in: "Logg inn",
    cancel: "Avbryt",
    done: "Du er logget inn",
    continue_to: "Fortsett til",
    failed: "Innloggingen ble avbrutt",
    start_again: "Gå tilbake til tjenesten og start på nytt.",
    error_title: "Noe gikk galt",
    logged_out: "Du er logget ut",
    logged_out_text: "Du er logget ut av segl. Du kan lukke dette vinduet.",
    expires: "Innloggingen utløper",
    attempts_left: "Forsøk igjen",
    language: "Språk",
    err_wrong_otp: "Feil engangskode. Prøv igjen med en ny kode.",
    err_otp_used: "Denne koden er allerede brukt. Vent på en ny kode.",
    err_wrong_password: "Feil passord.",
    err_device_blocked: "Kodebrikken er sperret etter for mange feil. Kontakt kundeservice.",
    err_password_locked: "Passordet er sperret etter for mange feil. Du må tilbakestille det.",
    err_too_many: "For mange feil forsøk. Gå tilbake til tjenesten og start på nytt.",
    err_expired: "Innloggingen er utløpt. Gå tilbake til tjenesten og start på nytt.",
    err_nin: "Ugyldig fødselsnummer",
    err_other: "Noe gikk galt. Prøv igjen.",
    method_app: "segl-appen",
    method_app_hint: "Bekreft i appen på telefonen din.",
    open_app: "Åpne segl-appen",
    open_app_text: "Vi har sendt en forespørsel til appen din. Sjekk at koden er den samme, og trykk «Ja, det er meg».",
    verification_code: "Kontrollkode",
    verification_code_hint: "Den samme koden vises i appen.",
    qr_text: "Har du appen på en annen telefon? Skann QR-koden med appen.",
    qr_alt: "QR-kode som skannes med segl-appen. Den endres hvert sekund.",
    app_waiting: "Venter på svar fra appen …",
    app_continue: "Jeg har svart i appen",
    app_try_again: "Send ny forespørsel",
    app_request_text: "Logg inn hos",
    err_app_expired: "Appen svarte ikke i tide. Prøv igjen eller velg en annen metode.",
    err_denied_in_app: "Innloggingen ble avvist i appen.",
    activate_title: "Aktiver segl-appen",
    activate_code_text: "Skriv inn denne aktiveringskoden i appen, eller skann QR-koden med appen.",
    activate_qr_alt: "QR-kode med aktiveringskoden",
    activate_opens: "Av sikkerhetshensyn kan koden brukes fra",
    activate_until: "Den må brukes før",
    activate_warning: "Vi har sendt en SMS til mobilnummeret ditt om at aktivering er startet. Gi aldri koden til andre.",
    sign_title: "Signer med segl",
    signing_for: "Du signerer for",
    sign_text_label: "Dette signerer du",
    sign_documents: "Dokumenter",
    sign_done_title: "Signert",
    sign_done_text: "Dokumentene er signert. Du kan lukke dette vinduet.",
    sign_failed_text: "Dokumentene ble ikke signert.",
    sign_closed_text: "Denne signeringen er ikke åpen lenger. Start på nytt fra tjenesten.",
};

/// Nynorsk.
pub static NN: Texts = Texts {
    title: "Logg inn med segl",
    logging_in_to: "Du loggar inn hjå",
    nin_label: "Fødselsnummer (11 siffer)",
    nin_hint: "Fødselsnummer eller D-nummer.",
    next: "Neste",
    choose_method: "Vel innloggingsmetode",
    method_otp: "Kodebrikke og passord",
    method_otp_hint: "Eingongskode frå kodebrikka, deretter passord.",
    choose_another: "Vel ein annan metode",
    otp_label: "Eingongskode frå kodebrikka",
    otp_hint: "Trykk på knappen på kodebrikka og skriv inn koden.",
    password_label: "Personleg passord",
    log_in: "Logg inn",
    cancel: "Avbryt",
    done: "Du er logga inn",
    continue_to: "Hald fram til",
    failed: "Innlogginga vart avbroten",
    start_again: "Gå tilbake til tenesta og start på nytt.",
    error_title: "Noko gjekk gale",
    logged_out: "Du er logga ut",
    logged_out_text: "Du er logga ut av segl. Du kan lukke dette vindauget.",
    expires: "Innlogginga går ut",
    attempts_left: "Forsøk att",
    language: "Språk",
    err_wrong_otp: "Feil eingongskode. Prøv igjen med ein ny kode.",
    err_otp_used: "Denne koden er alt brukt. Vent på ein ny kode.",
    err_wrong_password: "Feil passord.",
    err_device_blocked: "Kodebrikka er sperra etter for mange feil. Kontakt kundeservice.",
    err_password_locked: "Passordet er sperra etter for mange feil. Du må tilbakestille det.",
    err_too_many: "For mange feil forsøk. Gå tilbake til tenesta og start på nytt.",
    err_expired: "Innlogginga har gått ut. Gå tilbake til tenesta og start på nytt.",
    err_nin: "Ugyldig fødselsnummer",
    err_other: "Noko gjekk gale. Prøv igjen.",
    method_app: "segl-appen",
    method_app_hint: "Stadfest i appen på telefonen din.",
    open_app: "Opna segl-appen",
    open_app_text: "Vi har sendt ein førespurnad til appen din. Sjekk at koden er den same, og trykk «Ja, det er meg».",
    verification_code: "Kontrollkode",
    verification_code_hint: "Den same koden blir vist i appen.",
    qr_text: "Har du appen på ein annan telefon? Skann QR-koden med appen.",
    qr_alt: "QR-kode som blir skanna med segl-appen. Han endrar seg kvart sekund.",
    app_waiting: "Ventar på svar frå appen …",
    app_continue: "Eg har svart i appen",
    app_try_again: "Send ny førespurnad",
    app_request_text: "Logg inn hos",
    err_app_expired: "Appen svarte ikkje i tide. Prøv igjen eller vel ein annan metode.",
    err_denied_in_app: "Innlogginga vart avvist i appen.",
    activate_title: "Aktiver segl-appen",
    activate_code_text: "Skriv inn denne aktiveringskoden i appen, eller skann QR-koden med appen.",
    activate_qr_alt: "QR-kode med aktiveringskoden",
    activate_opens: "Av tryggleiksomsyn kan koden brukast frå",
    activate_until: "Han må brukast før",
    activate_warning: "Vi har sendt ein SMS til mobilnummeret ditt om at aktivering er starta. Gi aldri koden til andre.",
    sign_title: "Signer med segl",
    signing_for: "Du signerer for",
    sign_text_label: "Dette signerer du",
    sign_documents: "Dokument",
    sign_done_title: "Signert",
    sign_done_text: "Dokumenta er signerte. Du kan lukke dette vindauget.",
    sign_failed_text: "Dokumenta vart ikkje signerte.",
    sign_closed_text: "Denne signeringa er ikkje open lenger. Start på nytt frå tenesta.",
};

/// English.
pub static EN: Texts = Texts {
    title: "Log in with segl",
    logging_in_to: "You are logging in to",
    nin_label: "National identity number (11 digits)",
    nin_hint: "Fødselsnummer or D-number.",
    next: "Next",
    choose_method: "Choose how to log in",
    method_otp: "Code device and password",
    method_otp_hint: "One-time code from your code device, then your password.",
    choose_another: "Choose another method",
    otp_label: "One-time code from your code device",
    otp_hint: "Press the button on your code device and type the code.",
    password_label: "Personal password",
    log_in: "Log in",
    cancel: "Cancel",
    done: "You are logged in",
    continue_to: "Continue to",
    failed: "The login was stopped",
    start_again: "Go back to the service and start again.",
    error_title: "Something went wrong",
    logged_out: "You are logged out",
    logged_out_text: "You are logged out of segl. You can close this window.",
    expires: "This login expires",
    attempts_left: "Attempts left",
    language: "Language",
    err_wrong_otp: "Wrong one-time code. Try again with a new code.",
    err_otp_used: "This code has already been used. Wait for a new code.",
    err_wrong_password: "Wrong password.",
    err_device_blocked: "The code device is blocked after too many wrong codes. Contact support.",
    err_password_locked: "The password is locked after too many wrong attempts. You need to reset it.",
    err_too_many: "Too many failed attempts. Go back to the service and start again.",
    err_expired: "This login has expired. Go back to the service and start again.",
    err_nin: "Invalid national identity number",
    err_other: "Something went wrong. Try again.",
    method_app: "The segl app",
    method_app_hint: "Confirm in the app on your phone.",
    open_app: "Open the segl app",
    open_app_text: "We have sent a request to your app. Check that the code is the same, and tap \u{201c}Yes, it's me\u{201d}.",
    verification_code: "Verification code",
    verification_code_hint: "The same code is shown in the app.",
    qr_text: "Is the app on another phone? Scan the QR code with the app.",
    qr_alt: "QR code to scan with the segl app. It changes every second.",
    app_waiting: "Waiting for the app's answer …",
    app_continue: "I have answered in the app",
    app_try_again: "Send a new request",
    app_request_text: "Log in to",
    err_app_expired: "The app did not answer in time. Try again or choose another method.",
    err_denied_in_app: "The login was refused in the app.",
    activate_title: "Activate the segl app",
    activate_code_text: "Type this activation code into the app, or scan the QR code with the app.",
    activate_qr_alt: "QR code holding the activation code",
    activate_opens: "For your safety the code can be used from",
    activate_until: "It must be used before",
    activate_warning: "We have sent an SMS to your mobile number saying that an activation has started. Never give the code to anyone.",
    sign_title: "Sign with segl",
    signing_for: "You are signing for",
    sign_text_label: "What you sign",
    sign_documents: "Documents",
    sign_done_title: "Signed",
    sign_done_text: "The documents are signed. You may close this window.",
    sign_failed_text: "The documents were not signed.",
    sign_closed_text: "This signing is no longer open. Start again from the service.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_language_in_order() {
        assert_eq!(Lang::pick(["de", "nn-NO", "en"]), Some(Lang::Nn));
        assert_eq!(Lang::pick(["no"]), Some(Lang::Nb));
        assert_eq!(Lang::pick(["fr"]), None);
    }

    #[test]
    fn accept_language_sorts_by_quality() {
        assert_eq!(
            accept_language("en;q=0.5, nn;q=0.9, de"),
            vec!["de", "nn", "en"]
        );
    }
}
