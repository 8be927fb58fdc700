//! Scope sets (RFC 6749 §3.3): a space-delimited list on the wire, a set in the domain. Parsed once at the
//! edge; order is kept (the first occurrence wins) so what goes back out reads as it came in.

use std::fmt;

use crate::store::clients::Client;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<String>);

impl ScopeSet {
    /// The scopes of a space-delimited string: empty items dropped, repeats collapsed.
    pub fn parse(s: &str) -> ScopeSet {
        ScopeSet::from_iter(s.split(' '))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Every scope of `self` is in `other`.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.iter().all(|s| other.contains(s))
    }

    /// The scopes the app is still allowed: an admin who takes a scope from an app stops the release at
    /// once, without waiting for its grants to expire.
    pub fn allowed_for(&self, client: &Client) -> ScopeSet {
        ScopeSet(
            self.iter()
                .filter(|s| client.allows_scope(s))
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The scopes as string slices (for code that takes `&[&str]`).
    pub fn as_strs(&self) -> Vec<&str> {
        self.iter().collect()
    }
}

impl<'a> FromIterator<&'a str> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(items: I) -> ScopeSet {
        let mut out: Vec<String> = Vec::new();
        for s in items {
            if !s.is_empty() && !out.iter().any(|o| o == s) {
                out.push(s.to_owned());
            }
        }
        ScopeSet(out)
    }
}

/// The wire form: space-delimited.
impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_drops_empties_and_repeats_and_keeps_order() {
        let s = ScopeSet::parse(" openid  profile openid phone ");
        assert_eq!(s.to_string(), "openid profile phone");
        assert!(s.contains("profile"));
        assert!(!s.contains(""));
        assert!(ScopeSet::parse("").is_empty());
    }

    #[test]
    fn subsets() {
        let granted = ScopeSet::parse("openid profile offline_access");
        assert!(ScopeSet::parse("openid profile").is_subset_of(&granted));
        assert!(ScopeSet::parse("").is_subset_of(&granted));
        assert!(!ScopeSet::parse("openid phone").is_subset_of(&granted));
    }
}
