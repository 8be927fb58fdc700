//! Why an authorization code was not redeemed (RFC 6749 §4.1.3, RFC 7636 §4.6), once the statement that
//! consumes a code only when everything presented matches has refused it. Pure: no storage, no clock.

use crate::crypto;
use crate::store::families::CodeRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its own client presents a code already used: RFC 6749 §4.1.2 asks to revoke what the first use
    /// issued (the family named).
    Reused(String),
    /// Another client presents it (used or not). Nothing is revoked and the code stays as it was: a
    /// leaked code must neither burn the rightful client's redemption nor let a stranger end its grant.
    OtherClient,
    Expired,
    RedirectUri,
    Verifier,
    /// Everything matches now: the code was consumed concurrently by a request that is still running.
    Raced,
}

impl Refusal {
    pub fn description(&self) -> &'static str {
        match self {
            Refusal::Reused(_) => "authorization code already used",
            Refusal::OtherClient => "authorization code was issued to another client",
            Refusal::Expired => "authorization code expired",
            Refusal::RedirectUri => "redirect_uri does not match the authorization request",
            Refusal::Verifier => "code_verifier does not match the code_challenge",
            Refusal::Raced => "authorization code already used",
        }
    }
}

/// Why `client_id` could not redeem `code` (`used`: whether it was used already) with `redirect_uri` and
/// a verifier whose S256 challenge is `challenge`.
pub fn refusal(
    code: &CodeRow,
    used: bool,
    client_id: &str,
    redirect_uri: &str,
    challenge: &str,
    now: i64,
) -> Refusal {
    if code.client_id != client_id {
        return Refusal::OtherClient;
    }
    if used {
        return Refusal::Reused(code.family_id.clone());
    }
    if code.expires_at <= now {
        return Refusal::Expired;
    }
    if code.redirect_uri != redirect_uri {
        return Refusal::RedirectUri;
    }
    if !crypto::ct_eq(challenge.as_bytes(), code.code_challenge.as_bytes()) {
        return Refusal::Verifier;
    }
    Refusal::Raced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> CodeRow {
        CodeRow {
            client_id: "a".into(),
            redirect_uri: "https://a.example/cb".into(),
            code_challenge: "c".repeat(43),
            family_id: "f".into(),
            expires_at: 100,
        }
    }

    #[test]
    fn reuse_is_only_what_the_codes_own_client_does() {
        let c = code();
        let ch = "c".repeat(43);
        assert_eq!(refusal(&c, true, "a", "x", "y", 200), Refusal::Reused("f".into()));
        assert_eq!(
            refusal(&c, true, "b", &c.redirect_uri, &ch, 50),
            Refusal::OtherClient
        );
        assert_eq!(
            refusal(&c, false, "b", &c.redirect_uri, &ch, 50),
            Refusal::OtherClient
        );
    }

    #[test]
    fn each_mismatch_is_named() {
        let c = code();
        let ch = "c".repeat(43);
        assert_eq!(
            refusal(&c, false, "a", &c.redirect_uri, &ch, 100),
            Refusal::Expired
        );
        assert_eq!(
            refusal(&c, false, "a", "https://a.example/other", &ch, 50),
            Refusal::RedirectUri
        );
        assert_eq!(
            refusal(&c, false, "a", &c.redirect_uri, &"d".repeat(43), 50),
            Refusal::Verifier
        );
        assert_eq!(refusal(&c, false, "a", &c.redirect_uri, &ch, 50), Refusal::Raced);
    }
}
