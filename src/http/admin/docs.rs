//! `/admin/api/docs`: the admin API's reference, rendered on the server from the OpenAPI document
//! yunid serves — no script, nothing fetched from elsewhere (an air-gapped console can read it).

use std::sync::OnceLock;

use askama::Template;
use axum::response::Response;
use serde_json::Value;

use crate::http::i18n::Lang;
use crate::http::page;

/// One operation as the page shows it.
pub struct Operation {
    pub method: String,
    pub path: String,
    pub anchor: String,
    pub summary: String,
    pub description: String,
    pub tag: String,
    pub parameters: Vec<(String, String, bool, String)>,
    pub request: Option<String>,
    pub responses: Vec<(String, String)>,
}

/// A schema of `components.schemas`, with its JSON.
pub struct Schema {
    pub name: String,
    pub json: String,
}

#[derive(Template)]
#[template(path = "api_docs.html")]
struct DocsPage<'a> {
    t: &'static crate::http::i18n::Texts,
    title: &'a str,
    version: &'a str,
    description: &'a str,
    operations: &'a [Operation],
    schemas: &'a [Schema],
}

struct Reference {
    title: String,
    version: String,
    description: String,
    operations: Vec<Operation>,
    schemas: Vec<Schema>,
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `#/components/schemas/Person` → `Person`; an inline schema as compact JSON.
fn schema_label(schema: &Value) -> String {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r.rsplit('/').next().unwrap_or(r).to_owned(),
        None => serde_json::to_string(schema).unwrap_or_default(),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn reference(doc: &Value) -> Reference {
    let mut operations = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let parameters = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(item["parameters"].as_array().into_iter().flatten())
                    .map(|p| {
                        (
                            text(p, "name"),
                            text(p, "in"),
                            p["required"].as_bool().unwrap_or(false),
                            text(p, "description"),
                        )
                    })
                    .collect();
                let request = op["requestBody"]["content"].as_object().and_then(|c| {
                    c.iter()
                        .next()
                        .map(|(media, body)| format!("{media}: {}", schema_label(&body["schema"])))
                });
                let mut responses: Vec<(String, String)> = op["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(code, r)| (code.clone(), text(r, "description")))
                    .collect();
                responses.sort();
                operations.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    anchor: format!(
                        "{method}-{}",
                        path.trim_matches('/').replace(['/', '{', '}'], "-")
                    ),
                    summary: text(op, "summary"),
                    description: text(op, "description"),
                    tag: op["tags"][0].as_str().unwrap_or("").to_owned(),
                    parameters,
                    request,
                    responses,
                });
            }
        }
    }
    operations.sort_by(|a, b| (&a.tag, &a.path).cmp(&(&b.tag, &b.path)));
    let schemas = doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| Schema {
            name: name.clone(),
            json: serde_json::to_string_pretty(s).unwrap_or_default(),
        })
        .collect();
    Reference {
        title: text(&doc["info"], "title"),
        version: text(&doc["info"], "version"),
        description: text(&doc["info"], "description"),
        operations,
        schemas,
    }
}

pub async fn show(lang: Lang) -> Response {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    let r = REFERENCE.get_or_init(|| {
        let doc: Value = serde_json::from_str(super::OPENAPI).unwrap_or(Value::Null);
        reference(&doc)
    });
    page::render(DocsPage {
        t: lang.texts(),
        title: &r.title,
        version: &r.version,
        description: &r.description,
        operations: &r.operations,
        schemas: &r.schemas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_served_document_is_on_the_page() {
        let doc: Value = serde_json::from_str(super::super::OPENAPI).unwrap();
        let count: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| METHODS.iter().filter(|m| item.get(**m).is_some()).count())
            .sum();
        let r = reference(&doc);
        assert_eq!(r.operations.len(), count);
        assert!(
            r.operations.iter().all(|o| !o.summary.is_empty()),
            "every operation has a summary"
        );
        assert!(!r.schemas.is_empty());
    }
}
