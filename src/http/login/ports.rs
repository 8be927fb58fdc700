//! The ports the sign-in services reach other services through, answered by the application: who a
//! person may act for (`services::identity`), the licence types a request names (`services::licence`)
//! and ending a session everywhere (`services::logout`).

use crate::app::App;
use crate::crypto::Secrets;
use crate::services::authn::{BoxFuture, Directory};
use crate::services::login::{EndSession, People};
use crate::store::Db;
use crate::store::clients::Client;
use crate::store::orgs::{Organisation, Representation};

impl Directory for App {
    fn acting_options<'a>(
        &'a self,
        person_id: &'a str,
        client: &'a Client,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<(Representation, Organisation)>>> {
        Box::pin(async move {
            Ok(crate::services::identity::acting_options(&self.db, person_id, client, now).await?)
        })
    }

    fn licence_types<'a>(
        &'a self,
        client: &'a Client,
        scopes: &'a crate::scope::ScopeSet,
        claims: Option<&'a serde_json::Value>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<String>>> {
        Box::pin(async move {
            let types = crate::services::licence::requested_types(&self.db, client, scopes, claims).await?;
            Ok(types.into_iter().map(|t| t.code).collect())
        })
    }
}

impl EndSession for App {
    fn end_session<'a>(&'a self, sid: &'a str, now: i64) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { self.logout().end_session(sid, now).await })
    }
}

impl People for App {
    fn db(&self) -> &Db {
        &self.db
    }
    fn secrets(&self) -> &Secrets {
        &self.secrets
    }
}
