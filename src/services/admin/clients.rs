//! Checks on a department app an administrator creates: in a department they manage, an acr the
//! provider knows, no admin scope, and nothing only a super admin may give.

use super::{Admin, AdminError, ReleaseSettings, needs_super_admin};

/// What a new app asks for, as far as the rules look.
pub struct Wanted<'a> {
    pub department: &'a str,
    pub scopes: &'a [String],
    pub redirect_uris: &'a [String],
    pub min_acr: Option<i64>,
}

/// Whether `admin` may create the app `wanted`; in the order the API answers them.
pub fn may_create_client(admin: &Admin, wanted: &Wanted<'_>) -> Result<(), AdminError> {
    if !admin.can_create_client_in(wanted.department) {
        return Err(AdminError::Forbidden);
    }
    if wanted.min_acr.is_some_and(|a| !(1..=2).contains(&a)) {
        return Err(AdminError::Invalid {
            field: "min_acr",
            message: "min_acr is 1 or 2".into(),
        });
    }
    // Admin-only scopes are never handed out through this path.
    if let Some(bad) = wanted.scopes.iter().find(|s| s.starts_with("yunid:")) {
        return Err(AdminError::Invalid {
            field: "scopes",
            message: format!("{bad} cannot be granted here"),
        });
    }
    if !admin.is_super() {
        let settings = ReleaseSettings {
            scopes: wanted.scopes,
            public_subjects: false,
            redirect_uris: wanted.redirect_uris,
        };
        if needs_super_admin(None, &settings).is_some() {
            return Err(AdminError::Forbidden);
        }
    }
    Ok(())
}
