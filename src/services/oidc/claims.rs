//! Subjects and claims about a person, computed only for what is released.

use serde_json::{Map, Value, json};

use crate::app::App;
use crate::identity::ResidentId;
use crate::store::clients::{Client, SubjectType};
use crate::store::persons::PersonRow;

/// The `sub` a client sees for a person: pairwise per sector by default (OIDC Core §8.1).
pub fn subject(app: &App, client: &Client, person_id: &str) -> String {
    match client.subject_type {
        SubjectType::Public => person_id.to_owned(),
        SubjectType::Pairwise => app.secrets.pairwise_sub(&client.sector, person_id),
    }
}

/// Names of claims the request asks for in `member` (`userinfo` or `id_token`) of the `claims` parameter.
pub fn requested(claims: Option<&Value>, member: &str) -> Vec<String> {
    claims
        .and_then(|c| c.get(member))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

const PROFILE: [&str; 3] = ["name", "birthdate", "gender"];
const PHONE: [&str; 2] = ["phone_number", "phone_number_verified"];

/// Claim names released for these scopes plus individually requested ones.
pub fn released(scopes: &[&str], extra: &[String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let mut add = |name: &'static str| {
        if !out.contains(&name) {
            out.push(name);
        }
    };
    for scope in scopes {
        match *scope {
            "profile" => PROFILE.into_iter().for_each(&mut add),
            "phone" => PHONE.into_iter().for_each(&mut add),
            _ => {}
        }
    }
    // A claim asked for individually is released only within the scopes the client was granted.
    for name in extra {
        if let Some(c) = PROFILE.into_iter().chain(PHONE).find(|c| c == name) {
            let scope_ok = (PROFILE.contains(&c) && scopes.contains(&"profile"))
                || (PHONE.contains(&c) && scopes.contains(&"phone"));
            if scope_ok {
                add(c);
            }
        }
    }
    out
}

/// The values of `names` for a person. The ID number is decrypted only if a claim derived from it is asked.
pub fn person_claims(
    app: &App,
    person: &PersonRow,
    names: &[&str],
) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    let needs_id = names.iter().any(|n| matches!(*n, "birthdate" | "gender"));
    let id = if needs_id {
        let plain = app
            .secrets
            .decrypt(&person.id_number_enc, person.id.as_bytes())?;
        Some(
            ResidentId::parse(&plain)
                .map_err(|e| anyhow::anyhow!("stored ID number invalid: {}", e.code()))?,
        )
    } else {
        None
    };
    for name in names {
        match *name {
            "name" => {
                out.insert("name".into(), json!(person.name));
            }
            "birthdate" => {
                if let Some(id) = &id {
                    out.insert("birthdate".into(), json!(id.birthdate_iso()));
                }
            }
            "gender" => {
                if let Some(id) = &id {
                    out.insert("gender".into(), json!(id.gender().as_oidc_str()));
                }
            }
            "phone_number" => {
                if let Some(phone) = &person.phone {
                    out.insert("phone_number".into(), json!(phone));
                }
            }
            "phone_number_verified" if person.phone.is_some() => {
                out.insert("phone_number_verified".into(), json!(true));
            }
            _ => {}
        }
    }
    Ok(out)
}
