//! Request parameters as the protocol sees them: each at most once (RFC 6749 §3.1), empty means absent.

use std::collections::HashMap;

use crate::oauth::OAuthError;

/// Longest value accepted for any single parameter.
pub const MAX_VALUE: usize = 8192;

#[derive(Debug, Clone, Default)]
pub struct Params {
    map: HashMap<String, String>,
    repeated: Vec<String>,
}

impl Params {
    /// Collects pairs, remembering which names were repeated (an error only once someone asks for them).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Params {
        let mut params = Params::default();
        for (k, v) in pairs {
            if params.map.contains_key(&k) {
                if !params.repeated.contains(&k) {
                    params.repeated.push(k);
                }
                continue;
            }
            params.map.insert(k, v);
        }
        params
    }

    pub fn from_query(query: &str) -> Params {
        Params::from_pairs(form_urlencoded::parse(query.as_bytes()).into_owned())
    }

    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|r| r == name)
    }

    /// The first repeated parameter, if any.
    pub fn any_repeated(&self) -> Option<&str> {
        self.repeated.first().map(String::as_str)
    }

    /// A parameter's value; empty values count as absent, repeated or oversized ones are errors.
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        if self.is_repeated(name) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name} is repeated"
            )));
        }
        match self.map.get(name).map(String::as_str) {
            Some("") | None => Ok(None),
            Some(v) if v.len() > MAX_VALUE => Err(OAuthError::invalid_request(format!(
                "parameter {name} is too long"
            ))),
            Some(v) => Ok(Some(v)),
        }
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter {name} is missing")))
    }

    /// Raw access (no checks): for error reporting only.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }
}
