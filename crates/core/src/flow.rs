//! The login flow as a state machine: `identify → choose_method → otp → password → done`,
//! or with the app: `identify → choose_method → app_pending → done` when the app verified
//! its user (PIN or biometrics), `… → app_pending → password → done` when it did not.
//!
//! The server loads a flow, checks the outcome of a credential against its own store
//! (code device, password hash) and feeds that outcome in here together with `now`. This
//! module decides what the flow may do next; it never sees a secret and does no I/O, so
//! every expiry and counter rule is tested with plain numbers.

use serde::{Deserialize, Serialize};

use crate::nin::{Nin, NinError};
use crate::oidc::{self, AuthRequest};

/// Where a login flow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginState {
    /// Waiting for the national identity number.
    Identify,
    /// Waiting for the person to pick a method.
    ChooseMethod,
    /// Waiting for the code device's one-time code.
    Otp,
    /// Waiting for the person's answer in the app.
    AppPending,
    /// Waiting for the password.
    Password,
    /// Waiting for the answers to the control questions (a forgotten password).
    Questions,
    /// Authenticated; the client gets its code.
    Done,
    /// Ended without authentication; see the failure.
    Failed,
}

impl LoginState {
    /// The wire name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginState::Identify => "identify",
            LoginState::ChooseMethod => "choose_method",
            LoginState::Otp => "otp",
            LoginState::AppPending => "app_pending",
            LoginState::Password => "password",
            LoginState::Questions => "questions",
            LoginState::Done => "done",
            LoginState::Failed => "failed",
        }
    }
}

/// A way to prove who you are in the first step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Hardware code device (HOTP/TOTP).
    Otp,
    /// The phone app ("Yes, it's me").
    App,
    /// The password alone: offered only where one credential is enough (blocking an eID
    /// whose other credentials are lost).
    Password,
}

impl Method {
    /// The wire name of the method.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Otp => "otp",
            Method::App => "app",
            Method::Password => "password",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "otp" => Some(Method::Otp),
            "app" => Some(Method::App),
            "password" => Some(Method::Password),
            _ => None,
        }
    }
}

/// Why a flow ended without success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// Too many wrong answers in this flow.
    TooManyAttempts,
    /// The person or the client cancelled.
    Cancelled,
    /// The code device is blocked.
    DeviceBlocked,
    /// The password is locked.
    PasswordLocked,
    /// The person answered "No, that's not me" in the app.
    DeniedInApp,
}

impl FailureReason {
    /// The wire name, also the OAuth error description's key.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::TooManyAttempts => "too_many_attempts",
            FailureReason::Cancelled => "cancelled",
            FailureReason::DeviceBlocked => "device_blocked",
            FailureReason::PasswordLocked => "password_locked",
            FailureReason::DeniedInApp => "denied_in_app",
        }
    }
}

/// The outcome of checking a one-time code, as the server found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpCheck {
    /// The code was right and is now used up.
    Accepted,
    /// The code was wrong (or the person has no usable device: the same answer, so the
    /// pages do not reveal who has a device).
    Wrong,
    /// The code was right once but has been used before.
    Replayed,
    /// The device is blocked; no code is checked.
    Blocked,
}

/// The app's answer to the flow's request, once the server has checked its signature,
/// freshness, device and single use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppAnswer {
    /// "Yes, it's me", with how the app verified its user (`None`: no local verification,
    /// so the password follows).
    Approved(Option<crate::app::UserVerification>),
    /// "No, that's not me": the login ends (a possible fraud attempt).
    Denied,
    /// No answer before the request expired; the person may choose again.
    Expired,
}

/// The outcome of checking a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Right password.
    Accepted,
    /// Wrong password; `locked_now` when this failure locked it.
    Wrong,
    /// Locked before this attempt; the password was not checked.
    Locked,
}

/// A step refused; the flow may have changed (failure counted) or not.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowError {
    /// The flow's lifetime is over.
    #[error("the login has expired; start again from the service")]
    Expired,
    /// The step does not fit the state the flow is in.
    #[error("this step is not possible now (the login is at '{0}')")]
    InvalidState(&'static str),
    /// The number did not parse.
    #[error("{0}")]
    InvalidNin(NinError),
    /// The method is not offered.
    #[error("that method is not offered")]
    UnsupportedMethod,
    /// Wrong one-time code.
    #[error("wrong one-time code")]
    WrongOtp {
        /// Attempts left in this flow.
        remaining: u32,
    },
    /// A code used before.
    #[error("this one-time code has already been used; wait for the next one")]
    OtpReplayed {
        /// Attempts left in this flow.
        remaining: u32,
    },
    /// Wrong password.
    #[error("wrong password")]
    WrongPassword {
        /// Attempts left in this flow.
        remaining: u32,
    },
    /// The device is blocked.
    #[error(
        "the code device is blocked after too many wrong codes; contact support or resynchronise it"
    )]
    DeviceBlocked,
    /// The password is locked.
    #[error("the password is locked after too many wrong attempts; reset it")]
    PasswordLocked,
    /// The flow closed after too many failures.
    #[error("too many failed attempts; start again from the service")]
    TooManyAttempts,
    /// The person said no in the app.
    #[error("the login was refused in the app")]
    DeniedInApp,
    /// A control answer was wrong.
    #[error("the answers to the control questions are not right")]
    WrongAnswers {
        /// Attempts left in this flow.
        remaining: u32,
    },
    /// The app did not answer in time.
    #[error("the app did not answer in time; try again or choose another method")]
    AppExpired {
        /// Attempts left in this flow.
        remaining: u32,
    },
}

/// What a flow's authentication is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Logging in to a relying party (OpenID Connect).
    #[default]
    Login,
    /// Proving who you are on the "Activate the app" page, which then gives an activation
    /// code instead of a session.
    AppActivation,
    /// Signing a relying party's order ([`LoginFlow::order`]): the person proves who they
    /// are, and their approval makes the signatures.
    Sign,
    /// Logging in to segl's own pages ("My page", a guardian's approval of an order): a
    /// short session for those pages, no code for any relying party.
    Portal,
    /// Blocking one's own eID ("sperre") after losing a credential: any one remaining
    /// credential is enough (code device, app or password).
    Block,
    /// A forgotten password: the code device or the app, and the control questions; or
    /// the app with its own user verification (PIN or biometrics) alone.
    PasswordReset,
}

/// A login flow. Stored as JSON by the store (field `v` versions the record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginFlow {
    /// Record version, for future migrations of stored flows.
    pub v: u32,
    /// Current state.
    pub state: LoginState,
    /// The authorization request this login answers.
    pub request: AuthRequest,
    /// Who is logging in, once identified.
    pub nin: Option<Nin>,
    /// Methods offered.
    pub methods: Vec<Method>,
    /// The method chosen.
    pub method: Option<Method>,
    /// The browser's remembered choice, used to skip the choice step.
    pub remembered_method: Option<Method>,
    /// Failed answers in this flow.
    pub failures: u32,
    /// Most failures allowed before the flow closes.
    pub max_failures: u32,
    /// When the flow was created (unix seconds).
    pub created_at: i64,
    /// When it stops accepting steps (unix seconds).
    pub expires_at: i64,
    /// When the person finished authenticating.
    pub auth_time: Option<i64>,
    /// Authentication methods used, RFC 8176.
    pub amr: Vec<String>,
    /// Why it failed, in state `failed`.
    pub failure: Option<FailureReason>,
    /// Where the browser goes when done (the client's redirect URI with the code).
    #[serde(default)]
    pub redirect_to: Option<String>,
    /// The app request this flow waits for, in state `app_pending` only. The server opens
    /// one whenever the flow is in that state without one ([`LoginFlow::needs_app_request`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppWait>,
    /// What the authentication is for.
    #[serde(default)]
    pub purpose: Purpose,
    /// What a finished non-login flow produced, sealed by the server (e.g. the activation
    /// code of [`Purpose::AppActivation`], shown to the bound browser only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_result: Option<String>,
    /// The app request whose approval this flow used (the evidence a signing order keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_request: Option<String>,
    /// The signing order, for [`Purpose::Sign`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// The person's control questions, shown in state `questions` (the server fills them
    /// in when the flow gets there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub questions: Vec<String>,
}

/// The request a flow in `app_pending` waits for: what the browser shows beside the app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppWait {
    /// The approval request's id (what the app signs; also the QR code's flow reference).
    pub request_id: String,
    /// Shown in the browser and in the app, so the person sees they belong together.
    pub verification_code: String,
    /// When the request was made (unix seconds): second 0 of the animated QR code.
    pub started_at: i64,
    /// When the request lapses (unix seconds).
    pub expires_at: i64,
    /// Secret of the animated QR code (base64url); never shown, only its HMACs are.
    pub qr_secret: String,
}

impl LoginFlow {
    /// Starts a flow for a validated request.
    pub fn new(
        request: AuthRequest,
        remembered_method: Option<Method>,
        now: i64,
        ttl_secs: i64,
        max_failures: u32,
    ) -> Result<LoginFlow, FlowError> {
        let mut flow = LoginFlow {
            v: 1,
            state: LoginState::Identify,
            nin: None,
            methods: vec![Method::Otp, Method::App],
            method: None,
            remembered_method,
            failures: 0,
            max_failures,
            created_at: now,
            expires_at: now + ttl_secs,
            auth_time: None,
            amr: Vec::new(),
            failure: None,
            redirect_to: None,
            app: None,
            purpose: Purpose::Login,
            sealed_result: None,
            order: None,
            approved_request: None,
            questions: Vec::new(),
            request,
        };
        // A login_hint with a valid number skips the first page.
        if let Some(hint) = flow.request.login_hint.clone() {
            flow.identify(&hint, now)?;
        }
        Ok(flow)
    }

    /// Whether the flow has run out of time at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    fn ensure(&self, state: LoginState, now: i64) -> Result<(), FlowError> {
        if self.is_expired(now) && !matches!(self.state, LoginState::Done | LoginState::Failed) {
            return Err(FlowError::Expired);
        }
        if self.state == LoginState::Failed && self.failure == Some(FailureReason::TooManyAttempts)
        {
            return Err(FlowError::TooManyAttempts);
        }
        if self.state != state {
            return Err(FlowError::InvalidState(self.state.as_str()));
        }
        Ok(())
    }

    /// Step 1: the national identity number.
    pub fn identify(&mut self, nin: &str, now: i64) -> Result<(), FlowError> {
        self.ensure(LoginState::Identify, now)?;
        let nin = Nin::parse(nin).map_err(FlowError::InvalidNin)?;
        self.nin = Some(nin);
        match self.remembered_method.filter(|m| self.methods.contains(m)) {
            Some(m) => {
                self.method = Some(m);
                self.state = state_for(m);
            }
            None => self.state = LoginState::ChooseMethod,
        }
        Ok(())
    }

    /// Step 2: the method. Also "choose another method" from the method's own step.
    pub fn choose_method(&mut self, method: &str, now: i64) -> Result<Method, FlowError> {
        if matches!(self.state, LoginState::Otp | LoginState::AppPending) {
            // Going back to choose is allowed before the first factor is done; a request
            // sent to the app is dropped (choosing the app again sends a new one).
            self.state = LoginState::ChooseMethod;
            self.app = None;
        }
        self.ensure(LoginState::ChooseMethod, now)?;
        let method = Method::parse(method)
            .filter(|m| self.methods.contains(m))
            .ok_or(FlowError::UnsupportedMethod)?;
        self.method = Some(method);
        self.state = state_for(method);
        Ok(method)
    }

    /// Back to the list of methods, from the first factor's step (the code or the app).
    pub fn choose_another(&mut self, now: i64) -> Result<(), FlowError> {
        if self.state == LoginState::AppPending {
            self.ensure(LoginState::AppPending, now)?;
        } else {
            self.ensure(LoginState::Otp, now)?;
        }
        self.state = LoginState::ChooseMethod;
        self.app = None;
        Ok(())
    }

    /// Whether the flow waits for the app but has no request out yet: the server then
    /// opens one ([`LoginFlow::wait_for_app`]) in the same transaction as the step.
    pub fn needs_app_request(&self) -> bool {
        self.state == LoginState::AppPending && self.app.is_none()
    }

    /// Records the request the server sent to the app (or, for a person without an app,
    /// the request that looks the same and that no app will answer).
    pub fn wait_for_app(&mut self, wait: AppWait, now: i64) -> Result<(), FlowError> {
        self.ensure(LoginState::AppPending, now)?;
        self.app = Some(wait);
        Ok(())
    }

    /// Whether the flow waits for the app now (checked before the server records an
    /// answer).
    pub fn expect_app_answer(&self, now: i64) -> Result<(), FlowError> {
        self.ensure(LoginState::AppPending, now)
    }

    /// Step 3 with the app: the app's checked answer.
    pub fn app_answered(&mut self, answer: AppAnswer, now: i64) -> Result<(), FlowError> {
        self.expect_app_answer(now)?;
        let request = self.app.take().map(|a| a.request_id);
        if matches!(answer, AppAnswer::Approved(_)) {
            self.approved_request = request;
        }
        match (answer, self.purpose) {
            // One credential blocks; the app with its own user verification alone resets a
            // password, without it the control questions follow.
            (AppAnswer::Approved(uv), Purpose::Block | Purpose::PasswordReset) => {
                self.amr = std::iter::once("swk")
                    .chain(uv.map(|u| u.amr()))
                    .map(str::to_string)
                    .collect();
                if self.purpose == Purpose::Block || uv.is_some() {
                    if uv.is_some() {
                        self.amr.push("mfa".into());
                    }
                    self.done(now);
                } else {
                    self.state = LoginState::Questions;
                }
                Ok(())
            }
            (answer, _) => self.app_answered_login(answer, now),
        }
    }

    fn app_answered_login(&mut self, answer: AppAnswer, now: i64) -> Result<(), FlowError> {
        match answer {
            // The app's own user verification is enough unless the client asked for more
            // (acr_values high): then the password follows, as without it.
            AppAnswer::Approved(Some(uv))
                if oidc::acr_rank(&self.request.acr) <= oidc::acr_rank(oidc::ACR_SUBSTANTIAL) =>
            {
                self.amr = vec!["swk".into(), uv.amr().into(), "mfa".into()];
                self.auth_time = Some(now);
                self.state = LoginState::Done;
                Ok(())
            }
            AppAnswer::Approved(Some(uv)) => {
                self.amr = vec!["swk".into(), uv.amr().into()];
                self.state = LoginState::Password;
                Ok(())
            }
            AppAnswer::Approved(None) => {
                self.amr = vec!["swk".into()];
                self.state = LoginState::Password;
                Ok(())
            }
            AppAnswer::Denied => {
                self.state = LoginState::Failed;
                self.failure = Some(FailureReason::DeniedInApp);
                Err(FlowError::DeniedInApp)
            }
            AppAnswer::Expired => {
                let err = self.fail_once(|remaining| FlowError::AppExpired { remaining });
                if self.state != LoginState::Failed {
                    self.state = LoginState::ChooseMethod;
                }
                Err(err)
            }
        }
    }

    /// Whether the flow accepts a one-time code now (checked before the server spends a
    /// code on it).
    pub fn expect_otp(&self, now: i64) -> Result<(), FlowError> {
        self.ensure(LoginState::Otp, now)
    }

    /// Step 3: the outcome of the one-time code.
    pub fn otp_checked(&mut self, check: OtpCheck, now: i64) -> Result<(), FlowError> {
        self.expect_otp(now)?;
        match check {
            OtpCheck::Accepted => {
                self.amr.push("otp".into());
                match self.purpose {
                    Purpose::Block => self.done(now),
                    Purpose::PasswordReset => self.state = LoginState::Questions,
                    _ => self.state = LoginState::Password,
                }
                Ok(())
            }
            OtpCheck::Wrong => Err(self.fail_once(|remaining| FlowError::WrongOtp { remaining })),
            OtpCheck::Replayed => {
                Err(self.fail_once(|remaining| FlowError::OtpReplayed { remaining }))
            }
            OtpCheck::Blocked => {
                self.state = LoginState::Failed;
                self.failure = Some(FailureReason::DeviceBlocked);
                Err(FlowError::DeviceBlocked)
            }
        }
    }

    /// Whether the flow accepts a password now.
    pub fn expect_password(&self, now: i64) -> Result<(), FlowError> {
        self.ensure(LoginState::Password, now)
    }

    /// Step 4: the outcome of the password.
    pub fn password_checked(&mut self, check: PasswordCheck, now: i64) -> Result<(), FlowError> {
        self.expect_password(now)?;
        match check {
            PasswordCheck::Accepted => {
                self.amr = match self.method {
                    Some(Method::Password) => vec!["pwd".to_string()],
                    // The app's user verification, if it had one, stays on record.
                    Some(Method::App) => {
                        let mut amr = std::mem::take(&mut self.amr);
                        amr.extend(["pwd".to_string(), "mfa".to_string()]);
                        amr
                    }
                    _ => oidc::amr_otp_password(),
                };
                self.auth_time = Some(now);
                self.state = LoginState::Done;
                Ok(())
            }
            PasswordCheck::Wrong => {
                Err(self.fail_once(|remaining| FlowError::WrongPassword { remaining }))
            }
            PasswordCheck::Locked => {
                self.state = LoginState::Failed;
                self.failure = Some(FailureReason::PasswordLocked);
                Err(FlowError::PasswordLocked)
            }
        }
    }

    /// Whether the flow accepts answers to the control questions now.
    pub fn expect_answers(&self, now: i64) -> Result<(), FlowError> {
        self.ensure(LoginState::Questions, now)
    }

    /// The outcome of the control questions (all right, or not: the server does not say
    /// which answer was wrong, nor whether the person has questions at all).
    pub fn answers_checked(&mut self, right: bool, now: i64) -> Result<(), FlowError> {
        self.expect_answers(now)?;
        if right {
            self.amr.extend(["kba".to_string(), "mfa".to_string()]);
            self.done(now);
            Ok(())
        } else {
            Err(self.fail_once(|remaining| FlowError::WrongAnswers { remaining }))
        }
    }

    fn done(&mut self, now: i64) {
        self.auth_time = Some(now);
        self.state = LoginState::Done;
    }

    /// Ends the flow at the person's or client's wish.
    pub fn cancel(&mut self, now: i64) -> Result<(), FlowError> {
        if matches!(self.state, LoginState::Done | LoginState::Failed) {
            return Err(FlowError::InvalidState(self.state.as_str()));
        }
        if self.is_expired(now) {
            return Err(FlowError::Expired);
        }
        self.state = LoginState::Failed;
        self.failure = Some(FailureReason::Cancelled);
        self.app = None;
        Ok(())
    }

    /// The level this flow reached, once done.
    /// The level reached: high with two factors of which one is the password (code device
    /// or app, and password); substantial for the app with its own user verification
    /// alone (PIN or biometrics), as DESIGN.md sets it.
    pub fn acr(&self) -> &'static str {
        if self.method == Some(Method::App) && !self.amr.iter().any(|m| m == "pwd") {
            oidc::ACR_SUBSTANTIAL
        } else {
            oidc::ACR_HIGH
        }
    }

    fn fail_once(&mut self, err: impl Fn(u32) -> FlowError) -> FlowError {
        self.failures += 1;
        if self.failures >= self.max_failures {
            self.state = LoginState::Failed;
            self.failure = Some(FailureReason::TooManyAttempts);
            return FlowError::TooManyAttempts;
        }
        err(self.max_failures - self.failures)
    }
}

fn state_for(method: Method) -> LoginState {
    match method {
        Method::Otp => LoginState::Otp,
        Method::App => LoginState::AppPending,
        Method::Password => LoginState::Password,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(hint: Option<&str>) -> AuthRequest {
        AuthRequest {
            client_id: "c".into(),
            client_name: "Client".into(),
            redirect_uri: "https://rp.example/cb".into(),
            scopes: vec!["openid".into()],
            state: None,
            nonce: None,
            code_challenge: None,
            prompt: vec![],
            max_age: None,
            acr: oidc::ACR_SUBSTANTIAL.into(),
            login_hint: hint.map(str::to_string),
            ui_locales: vec![],
            id_token_claims: vec![],
            userinfo_claims: vec![],
        }
    }

    fn flow() -> LoginFlow {
        LoginFlow::new(request(None), None, 1000, 600, 3).unwrap()
    }

    /// A flow that offers the app, identified and waiting for it.
    fn app_flow() -> LoginFlow {
        let mut f = flow();
        f.methods = vec![Method::Otp, Method::App];
        f.identify("15058500027", 1001).unwrap();
        f.choose_method("app", 1002).unwrap();
        assert_eq!(f.state, LoginState::AppPending);
        assert_eq!(f.state.as_str(), "app_pending");
        f
    }

    fn purpose_flow(purpose: Purpose, methods: &[Method]) -> LoginFlow {
        let mut f = flow();
        f.purpose = purpose;
        f.methods = methods.to_vec();
        f.identify("15058500027", 1001).unwrap();
        f
    }

    #[test]
    fn one_credential_blocks() {
        let all = [Method::Otp, Method::App, Method::Password];
        let mut f = purpose_flow(Purpose::Block, &all);
        f.choose_method("otp", 1002).unwrap();
        f.otp_checked(OtpCheck::Accepted, 1003).unwrap();
        assert_eq!(
            (f.state, f.amr.clone()),
            (LoginState::Done, vec!["otp".into()])
        );
        let mut f = purpose_flow(Purpose::Block, &all);
        f.choose_method("password", 1002).unwrap();
        assert_eq!(f.state, LoginState::Password);
        f.password_checked(PasswordCheck::Accepted, 1003).unwrap();
        assert_eq!(
            (f.state, f.amr.clone()),
            (LoginState::Done, vec!["pwd".into()])
        );
        let mut f = purpose_flow(Purpose::Block, &all);
        f.choose_method("app", 1002).unwrap();
        f.app_answered(AppAnswer::Approved(None), 1003).unwrap();
        assert_eq!(
            (f.state, f.amr.clone()),
            (LoginState::Done, vec!["swk".into()])
        );
        // A login never offers the password alone.
        let mut f = flow();
        f.identify("15058500027", 1001).unwrap();
        assert_eq!(
            f.choose_method("password", 1002),
            Err(FlowError::UnsupportedMethod)
        );
    }

    #[test]
    fn a_reset_needs_the_questions_unless_the_app_verified_its_user() {
        let both = [Method::Otp, Method::App];
        let mut f = purpose_flow(Purpose::PasswordReset, &both);
        f.choose_method("otp", 1002).unwrap();
        f.otp_checked(OtpCheck::Accepted, 1003).unwrap();
        assert_eq!(f.state, LoginState::Questions);
        assert_eq!(f.state.as_str(), "questions");
        assert_eq!(
            f.answers_checked(false, 1004),
            Err(FlowError::WrongAnswers { remaining: 2 })
        );
        assert_eq!(f.state, LoginState::Questions);
        f.answers_checked(true, 1005).unwrap();
        assert_eq!(f.state, LoginState::Done);
        assert_eq!(f.amr, vec!["otp", "kba", "mfa"]);
        assert_eq!(f.auth_time, Some(1005));
        // Answers are no step of a login.
        let mut f = app_flow();
        assert!(f.answers_checked(true, 1003).is_err());
        // The app without user verification: the questions follow; with it: done.
        let mut f = purpose_flow(Purpose::PasswordReset, &both);
        f.choose_method("app", 1002).unwrap();
        f.app_answered(AppAnswer::Approved(None), 1003).unwrap();
        assert_eq!(f.state, LoginState::Questions);
        let mut f = purpose_flow(Purpose::PasswordReset, &both);
        f.choose_method("app", 1002).unwrap();
        f.app_answered(
            AppAnswer::Approved(Some(crate::app::UserVerification::Pin)),
            1003,
        )
        .unwrap();
        assert_eq!(f.state, LoginState::Done);
        assert_eq!(f.amr, vec!["swk", "pin", "mfa"]);
        // Three wrong answers end it.
        let mut f = purpose_flow(Purpose::PasswordReset, &both);
        f.choose_method("otp", 1002).unwrap();
        f.otp_checked(OtpCheck::Accepted, 1003).unwrap();
        let _ = f.answers_checked(false, 1004);
        let _ = f.answers_checked(false, 1005);
        assert_eq!(
            f.answers_checked(false, 1006),
            Err(FlowError::TooManyAttempts)
        );
        assert_eq!(f.state, LoginState::Failed);
    }

    #[test]
    fn the_app_with_user_verification_is_enough_at_substantial() {
        use crate::app::UserVerification as Uv;
        for (uv, amr) in [
            (Uv::Pin, "pin"),
            (Uv::Face, "face"),
            (Uv::Fingerprint, "fpt"),
        ] {
            let mut f = app_flow();
            f.app_answered(AppAnswer::Approved(Some(uv)), 1003).unwrap();
            assert_eq!(f.state, LoginState::Done);
            assert_eq!(f.amr, vec!["swk", amr, "mfa"]);
            assert_eq!(f.auth_time, Some(1003));
            assert_eq!(f.acr(), oidc::ACR_SUBSTANTIAL);
        }
    }

    #[test]
    fn the_app_without_user_verification_needs_the_password_and_reaches_high() {
        let mut f = app_flow();
        f.app_answered(AppAnswer::Approved(None), 1003).unwrap();
        assert_eq!(f.state, LoginState::Password);
        f.password_checked(PasswordCheck::Accepted, 1004).unwrap();
        assert_eq!(f.state, LoginState::Done);
        assert_eq!(f.amr, vec!["swk", "pwd", "mfa"]);
        assert_eq!(f.acr(), oidc::ACR_HIGH);
    }

    #[test]
    fn a_client_asking_for_high_gets_the_password_after_the_app() {
        use crate::app::UserVerification as Uv;
        let mut f = app_flow();
        f.request.acr = oidc::ACR_HIGH.into();
        f.app_answered(AppAnswer::Approved(Some(Uv::Face)), 1003)
            .unwrap();
        assert_eq!(f.state, LoginState::Password);
        f.password_checked(PasswordCheck::Accepted, 1004).unwrap();
        assert_eq!(f.amr, ["swk", "face", "pwd", "mfa"]);
        assert_eq!(f.acr(), oidc::ACR_HIGH);
    }

    #[test]
    fn the_request_is_dropped_when_the_flow_leaves_app_pending() {
        let wait = AppWait {
            request_id: "r".into(),
            verification_code: "elg fjord".into(),
            started_at: 1002,
            expires_at: 1122,
            qr_secret: "s".into(),
        };
        let mut f = app_flow();
        assert!(f.needs_app_request());
        f.wait_for_app(wait.clone(), 1002).unwrap();
        assert!(!f.needs_app_request());
        f.choose_another(1003).unwrap();
        assert_eq!(f.app, None);
        f.choose_method("app", 1004).unwrap();
        assert!(f.needs_app_request());
        f.wait_for_app(wait.clone(), 1004).unwrap();
        f.cancel(1005).unwrap();
        assert_eq!(f.app, None);
        assert!(!f.needs_app_request());
        // Not outside app_pending.
        let mut g = flow();
        assert!(g.wait_for_app(wait, 1002).is_err());
    }

    #[test]
    fn no_in_the_app_ends_the_login() {
        let mut f = app_flow();
        assert_eq!(
            f.app_answered(AppAnswer::Denied, 1003),
            Err(FlowError::DeniedInApp)
        );
        assert_eq!(f.state, LoginState::Failed);
        assert_eq!(f.failure, Some(FailureReason::DeniedInApp));
        assert_eq!(f.failure.map(FailureReason::as_str), Some("denied_in_app"));
        // Nothing more happens in it: not another answer, not another method.
        assert!(f.app_answered(AppAnswer::Approved(None), 1004).is_err());
        assert!(f.choose_method("otp", 1004).is_err());
    }

    #[test]
    fn an_unanswered_request_counts_and_lets_the_person_choose_again() {
        let mut f = app_flow();
        assert_eq!(
            f.app_answered(AppAnswer::Expired, 1003),
            Err(FlowError::AppExpired { remaining: 2 })
        );
        assert_eq!(f.state, LoginState::ChooseMethod);
        f.choose_method("app", 1004).unwrap();
        assert!(f.app_answered(AppAnswer::Expired, 1005).is_err());
        f.choose_method("app", 1006).unwrap();
        // The third failure of the flow (max 3) ends it.
        assert_eq!(
            f.app_answered(AppAnswer::Expired, 1007),
            Err(FlowError::TooManyAttempts)
        );
        assert_eq!(f.state, LoginState::Failed);
    }

    #[test]
    fn the_app_step_is_refused_out_of_turn_and_after_expiry() {
        let mut f = flow();
        f.methods = vec![Method::Otp, Method::App];
        f.identify("15058500027", 1001).unwrap();
        // Not waiting for the app yet.
        assert_eq!(
            f.app_answered(AppAnswer::Approved(None), 1002),
            Err(FlowError::InvalidState("choose_method"))
        );
        // Offered only when the flow offers it.
        let mut otp_only = flow();
        otp_only.methods = vec![Method::Otp];
        otp_only.identify("15058500027", 1001).unwrap();
        assert_eq!(
            otp_only.choose_method("app", 1002),
            Err(FlowError::UnsupportedMethod)
        );
        let mut f = app_flow();
        assert_eq!(
            f.app_answered(AppAnswer::Approved(None), 1600),
            Err(FlowError::Expired)
        );
        // From the app's page the person may go back and choose the code device.
        let mut f = app_flow();
        f.choose_another(1003).unwrap();
        assert_eq!(f.state, LoginState::ChooseMethod);
        f.choose_method("otp", 1004).unwrap();
        assert_eq!(f.state, LoginState::Otp);
    }

    #[test]
    fn happy_path_reaches_done_with_amr() {
        let mut f = flow();
        f.identify("15058500027", 1001).unwrap();
        assert_eq!(f.state, LoginState::ChooseMethod);
        f.choose_method("otp", 1002).unwrap();
        f.otp_checked(OtpCheck::Accepted, 1003).unwrap();
        assert_eq!(f.state, LoginState::Password);
        f.password_checked(PasswordCheck::Accepted, 1004).unwrap();
        assert_eq!(f.state, LoginState::Done);
        assert_eq!(f.amr, vec!["otp", "pwd", "mfa"]);
        assert_eq!(f.auth_time, Some(1004));
    }

    #[test]
    fn login_hint_and_remembered_method_skip_steps() {
        let f = LoginFlow::new(request(Some("15058500027")), Some(Method::Otp), 0, 600, 3).unwrap();
        assert_eq!(f.state, LoginState::Otp);
        assert_eq!(f.method, Some(Method::Otp));
    }

    #[test]
    fn bad_nin_is_refused_with_reason_and_changes_nothing() {
        let mut f = flow();
        let err = f.identify("15058500028", 1001).unwrap_err();
        assert!(matches!(
            err,
            FlowError::InvalidNin(NinError::BadCheckDigit2)
        ));
        assert_eq!(f.state, LoginState::Identify);
        assert_eq!(f.failures, 0);
    }

    #[test]
    fn expired_flow_refuses_every_step() {
        let mut f = flow();
        assert_eq!(f.identify("15058500027", 1600), Err(FlowError::Expired));
        assert_eq!(f.cancel(1600), Err(FlowError::Expired));
    }

    #[test]
    fn steps_out_of_order_are_refused() {
        let mut f = flow();
        assert_eq!(
            f.otp_checked(OtpCheck::Accepted, 1001),
            Err(FlowError::InvalidState("identify"))
        );
        assert_eq!(
            f.password_checked(PasswordCheck::Accepted, 1001),
            Err(FlowError::InvalidState("identify"))
        );
        assert_eq!(f.state, LoginState::Identify);
    }

    #[test]
    fn failures_count_and_close_the_flow() {
        let mut f = flow();
        f.identify("15058500027", 1001).unwrap();
        f.choose_method("otp", 1001).unwrap();
        assert_eq!(
            f.otp_checked(OtpCheck::Wrong, 1002),
            Err(FlowError::WrongOtp { remaining: 2 })
        );
        assert_eq!(
            f.otp_checked(OtpCheck::Replayed, 1002),
            Err(FlowError::OtpReplayed { remaining: 1 })
        );
        assert_eq!(
            f.otp_checked(OtpCheck::Wrong, 1002),
            Err(FlowError::TooManyAttempts)
        );
        assert_eq!(f.state, LoginState::Failed);
        assert_eq!(f.failure, Some(FailureReason::TooManyAttempts));
        assert_eq!(
            f.otp_checked(OtpCheck::Accepted, 1003),
            Err(FlowError::TooManyAttempts)
        );
    }

    #[test]
    fn blocked_device_and_locked_password_fail_the_flow() {
        let mut f = flow();
        f.identify("15058500027", 1001).unwrap();
        f.choose_method("otp", 1001).unwrap();
        assert_eq!(
            f.otp_checked(OtpCheck::Blocked, 1002),
            Err(FlowError::DeviceBlocked)
        );
        assert_eq!(f.failure, Some(FailureReason::DeviceBlocked));

        let mut f = flow();
        f.identify("15058500027", 1001).unwrap();
        f.choose_method("otp", 1001).unwrap();
        f.otp_checked(OtpCheck::Accepted, 1002).unwrap();
        assert_eq!(
            f.password_checked(PasswordCheck::Locked, 1003),
            Err(FlowError::PasswordLocked)
        );
        assert_eq!(f.state, LoginState::Failed);
    }

    #[test]
    fn choose_another_method_goes_back() {
        let mut f =
            LoginFlow::new(request(Some("15058500027")), Some(Method::Otp), 0, 600, 3).unwrap();
        f.choose_another(1).unwrap();
        assert_eq!(f.state, LoginState::ChooseMethod);
        assert_eq!(
            f.choose_method("fido9", 1),
            Err(FlowError::UnsupportedMethod)
        );
        f.choose_method("otp", 1).unwrap();
        assert_eq!(f.state, LoginState::Otp);
    }

    #[test]
    fn cancel_ends_and_cannot_repeat() {
        let mut f = flow();
        f.cancel(1001).unwrap();
        assert_eq!(f.failure, Some(FailureReason::Cancelled));
        assert_eq!(f.cancel(1002), Err(FlowError::InvalidState("failed")));
    }
}
