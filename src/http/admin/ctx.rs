//! An administrator acting through the API or the console: who, from where, and the audit of what
//! they did (a refused attempt too); the JSON a person is shown as.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::edit;
use super::{Caller, Problem};
use crate::app::App;
use crate::identity::{Phone, ResidentId};
use crate::services::admin::{Admin, AdminError};
use crate::services::audit;
use crate::store::audit::NewEvent;
use crate::store::persons::PersonRow;

/// An admin acting through the API or the console.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub admin: &'a Admin,
    pub address: &'a str,
}

impl<'a> Ctx<'a> {
    /// The context of an admin API request.
    pub fn of(app: &'a App, caller: &'a Caller, address: &'a str) -> Self {
        Ctx {
            app,
            admin: &caller.0,
            address,
        }
    }

    pub(super) async fn audit(
        &self,
        action: &str,
        subject: &str,
        client: &str,
        outcome: &str,
        detail: Value,
    ) -> Result<(), Problem> {
        audit::record(
            &self.app.db,
            self.app.now(),
            NewEvent {
                actor: &self.admin.actor,
                action,
                subject,
                client_id: client,
                address: self.address,
                outcome,
                detail: detail.to_string(),
            },
        )
        .await
        .map_err(Problem::internal)
    }

    pub async fn audit_forbidden(&self, action: &str) -> Result<(), Problem> {
        self.audit(action, "", "", "forbidden", json!({})).await
    }

    pub async fn audit_success(&self, action: &str, client: &str) -> Result<(), Problem> {
        self.audit(action, client, client, "success", json!({})).await
    }

    /// The answer to a refused `action`; a refusal by rule leaves a trace in the audit trail (on this
    /// person, with the reason, when the person is why).
    pub(super) async fn refused(&self, e: AdminError, action: &str, subject: &str, client: &str) -> Problem {
        let traced = match &e {
            AdminError::Forbidden => self.forbid(false, action, subject, client).await,
            AdminError::NotOnThisPerson { person_id, reason } => {
                match self
                    .audit(
                        action,
                        person_id,
                        client,
                        "forbidden",
                        json!({ "reason": reason }),
                    )
                    .await
                {
                    Ok(()) => Err(Problem::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!("not allowed: {action} ({reason}: super admins only)"),
                    )),
                    Err(p) => Err(p),
                }
            }
            _ => Ok(()),
        };
        match traced {
            Err(p) => p,
            Ok(()) => problem(e),
        }
    }

    /// Refuses, leaving a trace of the attempt.
    pub(super) async fn forbid(
        &self,
        allowed: bool,
        action: &str,
        subject: &str,
        client: &str,
    ) -> Result<(), Problem> {
        if allowed {
            return Ok(());
        }
        self.audit(action, subject, client, "forbidden", json!({}))
            .await?;
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("not allowed: {action}"),
        ))
    }
}

/// The problem an administrator's refused request answers (the refusals that must leave a trace go
/// through [`Ctx::refused`]).
pub fn problem(e: AdminError) -> Problem {
    match e {
        AdminError::Forbidden => Problem::new(StatusCode::FORBIDDEN, "forbidden", "not allowed"),
        AdminError::NotOnThisPerson { .. } => Problem::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
        AdminError::NotFound(what) => {
            Problem::new(StatusCode::NOT_FOUND, "not found", format!("no such {what}"))
        }
        AdminError::Invalid { field, message } => Problem::field(field, message),
        AdminError::Internal(e) => Problem::from_error(&e),
    }
}

pub fn person_json(app: &App, p: &PersonRow) -> Value {
    let id_masked = app
        .secrets
        .decrypt(&p.id_number_enc, p.id.as_bytes())
        .ok()
        .and_then(|n| ResidentId::parse(&n).ok())
        .map(|n| n.masked())
        .unwrap_or_default();
    json!({
        "id": p.id,
        "name": p.name,
        "id_number_masked": id_masked,
        "phone_masked": p.phone.as_deref().and_then(|x| Phone::parse(x).ok()).map(|x| x.masked()),
        "real_name_level": p.real_name_level,
        "real_name_method": p.real_name_method,
        "status": p.status.as_str(),
        "phone_verified": p.phone_verified,
        "password_must_change": p.password_must_change,
        "version": p.version,
    })
}

/// Ends every session of the person and revokes every grant (offline ones too): see
/// `logout::end_everything`.
pub(super) async fn end_all_sessions(app: &App, person_id: &str) -> Result<(), Problem> {
    app.logout()
        .end_everything(person_id, app.now())
        .await
        .map_err(Problem::internal)
}

pub(super) async fn managed_client(
    ctx: &Ctx<'_>,
    id: &str,
    action: &str,
) -> Result<std::sync::Arc<crate::store::clients::Client>, Problem> {
    let client = edit::found(ctx.app.db.client(id).await, "client")?;
    ctx.forbid(ctx.admin.can_manage_client(&client), action, id, id)
        .await?;
    console_client_is_yunids(&client)?;
    Ok(client)
}

/// The console's own client is yunid's to keep (its secret derives from the deployment's secret, its
/// settings from the issuer): nobody rotates, disables or edits it through the API.
pub(super) fn console_client_is_yunids(client: &crate::store::clients::Client) -> Result<(), Problem> {
    if crate::services::console::is_console(client) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "managed by yunid",
            "the admin console's own client is kept by yunid and cannot be changed here",
        ));
    }
    Ok(())
}
