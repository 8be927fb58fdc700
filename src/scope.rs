//! Scope sets (RFC 6749 §3.3): a space-delimited list on the wire and in the database, a set in the
//! domain. Grants, device requests, consents and upstreams store them space-separated; they are parsed
//! once where those rows are read and written back from this type. Order is kept (the first occurrence
//! wins) so what goes back out reads as it came in.

use std::fmt;

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

    /// The scopes `keep` says yes to, in order.
    pub fn filter(&self, mut keep: impl FnMut(&str) -> bool) -> ScopeSet {
        self.iter().filter(|s| keep(s)).collect()
    }
}

/// Adds the scopes not in yet, at the end (empty items are not scopes).
impl<'a> Extend<&'a str> for ScopeSet {
    fn extend<I: IntoIterator<Item = &'a str>>(&mut self, scopes: I) {
        for s in scopes {
            if !s.is_empty() && !self.contains(s) {
                self.0.push(s.to_owned());
            }
        }
    }
}

impl<'a> FromIterator<&'a str> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(items: I) -> ScopeSet {
        let mut out = ScopeSet::default();
        out.extend(items);
        out
    }
}

/// The wire and stored form: space-delimited.
impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// As JSON: an array of strings (a pending authorization request, audit details).
impl serde::Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// From a JSON array of strings, with empty items and repeats dropped as [`ScopeSet::parse`] does.
impl<'de> serde::Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ScopeSet, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        Ok(items.iter().map(String::as_str).collect())
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

    #[test]
    fn the_stored_form_reads_back_as_itself() {
        for stored in [
            "openid",
            "openid profile offline_access",
            "licence:X org:1 org:1:openid",
            "",
        ] {
            assert_eq!(ScopeSet::parse(stored).to_string(), stored);
        }
    }

    #[test]
    fn extending_and_filtering_keep_order_and_add_nothing_twice() {
        let mut s = ScopeSet::parse("openid profile");
        s.extend(["phone", "openid", "", "licences"]);
        assert_eq!(s.to_string(), "openid profile phone licences");
        assert_eq!(s.filter(|x| x != "profile").to_string(), "openid phone licences");
    }

    #[test]
    fn json_is_an_array_of_strings() {
        let s = ScopeSet::parse("openid profile");
        let json = serde_json::to_value(&s).ok();
        assert_eq!(json, Some(serde_json::json!(["openid", "profile"])));
        let back: Option<ScopeSet> =
            serde_json::from_value(serde_json::json!(["openid", "", "openid", "phone"])).ok();
        assert_eq!(back, Some(ScopeSet::parse("openid phone")));
    }
}
