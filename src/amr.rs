//! Authentication method references: how a sign-in was made (OIDC Core §2 `amr`, values from RFC 8176
//! plus yunid's own `fed`). Sessions, grants, scan and device requests store them space-separated; they
//! are parsed once where those rows are read and written back from this type.

/// A method yunid knows: the RFC 8176 §2 registry, and `fed` (a sign-in at an upstream provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Biometric authentication using facial recognition.
    Face,
    /// Biometric authentication using a fingerprint.
    Fpt,
    /// Use of geolocation information.
    Geo,
    /// A hardware-protected key (a passkey).
    Hwk,
    /// Biometric authentication using an iris scan.
    Iris,
    /// Knowledge-based authentication.
    Kba,
    /// Multiple-channel authentication: a scan to sign in, whose factors were proven on the phone.
    Mca,
    /// More than one factor.
    Mfa,
    /// A one-time password.
    Otp,
    /// A personal identification number.
    Pin,
    /// A password.
    Pwd,
    /// Risk-based authentication.
    Rba,
    /// Biometric authentication using a retina scan.
    Retina,
    /// A smart card.
    Sc,
    /// An SMS one-time code.
    Sms,
    /// A software-protected key.
    Swk,
    /// Confirmation by telephone call.
    Tel,
    /// The user was verified by the authenticator (PIN, biometrics).
    User,
    /// Biometric authentication using a voiceprint.
    Vbm,
    /// Windows integrated authentication.
    Wia,
    /// An upstream provider's sign-in (a session opened by federation, carried on by a scan). yunid's
    /// own value: RFC 8176 §6.1 lets a provider use values outside the registry.
    Fed,
}

const ALL: [Method; 21] = [
    Method::Face,
    Method::Fpt,
    Method::Geo,
    Method::Hwk,
    Method::Iris,
    Method::Kba,
    Method::Mca,
    Method::Mfa,
    Method::Otp,
    Method::Pin,
    Method::Pwd,
    Method::Rba,
    Method::Retina,
    Method::Sc,
    Method::Sms,
    Method::Swk,
    Method::Tel,
    Method::User,
    Method::Vbm,
    Method::Wia,
    Method::Fed,
];

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Face => "face",
            Method::Fpt => "fpt",
            Method::Geo => "geo",
            Method::Hwk => "hwk",
            Method::Iris => "iris",
            Method::Kba => "kba",
            Method::Mca => "mca",
            Method::Mfa => "mfa",
            Method::Otp => "otp",
            Method::Pin => "pin",
            Method::Pwd => "pwd",
            Method::Rba => "rba",
            Method::Retina => "retina",
            Method::Sc => "sc",
            Method::Sms => "sms",
            Method::Swk => "swk",
            Method::Tel => "tel",
            Method::User => "user",
            Method::Vbm => "vbm",
            Method::Wia => "wia",
            Method::Fed => "fed",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// A factor yunid counts towards the level (`acr`): the ones it verifies itself. `user` and `mfa`
    /// only qualify others; `mca` and `fed` say where factors were proven, not which.
    fn is_factor(self) -> bool {
        matches!(self, Method::Pwd | Method::Sms | Method::Hwk | Method::Swk)
    }

    /// A method entered in this browser (a credential typed or a key used here).
    fn is_entered_here(self) -> bool {
        matches!(
            self,
            Method::Pwd | Method::Sms | Method::Hwk | Method::Swk | Method::User
        )
    }
}

/// One stored value: a method yunid knows, or one it does not (written by a newer release, or by hand),
/// which is kept as it was so that it reaches apps and is written back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Known(Method),
    Unknown(String),
}

impl Value {
    fn as_str(&self) -> &str {
        match self {
            Value::Known(m) => m.as_str(),
            Value::Unknown(s) => s,
        }
    }
}

/// The methods of a sign-in, in order, each once: the `amr` claim, stored space-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Amr(Vec<Value>);

impl Amr {
    pub fn of(methods: &[Method]) -> Amr {
        let mut amr = Amr::default();
        amr.add(methods);
        amr
    }

    /// The stored form (`"pwd sms mfa"`). A value yunid does not know is kept, in its place (an `amr`
    /// value is a case-sensitive string, RFC 8176 §1); empty parts and repeats are not values.
    pub fn parse(stored: &str) -> Amr {
        let mut amr = Amr::default();
        for part in stored.split(' ').filter(|p| !p.is_empty()) {
            let value = match Method::parse(part) {
                Some(m) => Value::Known(m),
                None => Value::Unknown(part.to_owned()),
            };
            if !amr.0.contains(&value) {
                amr.0.push(value);
            }
        }
        amr
    }

    /// Adds the methods not in yet, at the end.
    pub fn add(&mut self, methods: &[Method]) {
        for m in methods {
            if !self.contains(*m) {
                self.0.push(Value::Known(*m));
            }
        }
    }

    /// The same methods and `m`.
    pub fn with(mut self, m: Method) -> Amr {
        self.add(&[m]);
        self
    }

    pub fn contains(&self, m: Method) -> bool {
        self.0.contains(&Value::Known(m))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values, in order, as apps see them.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Value::as_str)
    }

    fn factors(&self) -> usize {
        self.0
            .iter()
            .filter(|v| matches!(v, Value::Known(m) if m.is_factor()))
            .count()
    }

    /// The level these methods reach: 2 for two distinct factors or a user-verified passkey, else 1.
    pub fn acr(&self) -> i64 {
        let verified_key =
            (self.contains(Method::Hwk) || self.contains(Method::Swk)) && self.contains(Method::User);
        if self.factors() >= 2 || verified_key { 2 } else { 1 }
    }

    /// The same methods, marked `mfa` when two factors are in.
    pub fn with_mfa(mut self) -> Amr {
        self.0.retain(|v| *v != Value::Known(Method::Mfa));
        if self.factors() >= 2 {
            self.0.push(Value::Known(Method::Mfa));
        }
        self
    }

    /// Whether these methods were carried from a sign-in elsewhere: a scan (`mca`, RFC 8176: more than
    /// one channel) or an upstream provider (`fed`). Such factors are never combined with a factor
    /// proven in this browser.
    pub fn is_carried(&self) -> bool {
        self.contains(Method::Mca) || self.contains(Method::Fed)
    }

    /// Whether every method was entered in this browser (password, SMS code, passkey): nothing carried
    /// from a phone or an upstream, nothing yunid does not know.
    pub fn all_entered_here(&self) -> bool {
        !self.is_empty()
            && self
                .0
                .iter()
                .all(|v| matches!(v, Value::Known(m) if m.is_entered_here()))
    }
}

impl std::fmt::Display for Amr {
    /// The stored form: the values space-separated.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.values().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(v)?;
        }
        Ok(())
    }
}

/// The `amr` claim: a JSON array of strings (OIDC Core §2).
impl serde::Serialize for Amr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_counts_factors_and_marks_mfa() {
        assert_eq!(Amr::of(&[Method::Pwd]).acr(), 1);
        assert_eq!(Amr::of(&[Method::Hwk, Method::User]).acr(), 2);
        assert_eq!(Amr::of(&[Method::Hwk]).acr(), 1);
        let both = Amr::of(&[Method::Pwd, Method::Sms]);
        assert_eq!(both.acr(), 2);
        assert_eq!(both.with_mfa().to_string(), "pwd sms mfa");
        assert_eq!(Amr::parse("pwd sms mfa").with_mfa().to_string(), "pwd sms mfa");
        assert_eq!(Amr::parse("pwd pwd").to_string(), "pwd");
    }

    #[test]
    fn a_value_yunid_does_not_know_is_kept_in_its_place() {
        let amr = Amr::parse("pwd x-bank-app sms");
        assert_eq!(amr.to_string(), "pwd x-bank-app sms");
        assert_eq!(
            serde_json::to_value(&amr).ok(),
            Some(serde_json::json!(["pwd", "x-bank-app", "sms"]))
        );
        assert_eq!(
            amr.acr(),
            2,
            "an unknown value is no factor, the others still count"
        );
        assert!(!amr.all_entered_here(), "nor is it proof entered in this browser");
        assert_eq!(
            amr.with_mfa().with(Method::Mca).to_string(),
            "pwd x-bank-app sms mfa mca"
        );
    }

    #[test]
    fn the_scan_and_an_upstream_mark_a_sign_in_carried() {
        assert!(Amr::parse("hwk user mca").is_carried());
        assert!(Amr::parse("fed").is_carried());
        assert!(!Amr::parse("pwd sms mfa").is_carried());
        assert!(Amr::parse("hwk user").all_entered_here());
        assert!(!Amr::parse("fed").all_entered_here());
        assert!(!Amr::parse("").all_entered_here());
    }

    #[test]
    fn every_method_reads_back_as_itself() {
        for m in ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
            assert_eq!(Amr::parse(m.as_str()).values().collect::<Vec<_>>(), [m.as_str()]);
        }
        assert_eq!(Amr::parse("").values().count(), 0);
    }
}
