//! Who may act on which person, decided against the person as stored: the role first (who may not do
//! this at all learns nothing about the person), then the person's own standing (an administrator's
//! account, a super admin's lock: super admins only).

use super::{Admin, AdminError, PersonAction, Role, Target, Verdict};
use crate::store::Db;
use crate::store::persons::PersonRow;

pub use crate::store::persons::PersonStatus;

// What the admin actions set; the type and its stored form live with the row (`store::persons`).
impl PersonStatus {
    /// The status a lock, disable or unlock sets; `None` for the other actions.
    pub fn set_by(action: PersonAction) -> Option<PersonStatus> {
        match action {
            PersonAction::Lock => Some(PersonStatus::Locked),
            PersonAction::Disable => Some(PersonStatus::Disabled),
            PersonAction::Unlock => Some(PersonStatus::Active),
            _ => None,
        }
    }
}

/// A person an administrator may act on.
#[derive(Debug)]
pub struct Allowed {
    pub person: PersonRow,
    /// A super admin acts on another super admin: recorded loudly (see [`Verdict::AllowedLoudly`]).
    pub loud: bool,
}

/// Loads the person `id` for `action` if `admin` may act on them. Refusals: [`AdminError::Forbidden`]
/// (the role does not allow it; checked before the person is read), [`AdminError::NotFound`],
/// [`AdminError::NotOnThisPerson`] (with the reason).
pub async fn person_to_act_on(
    db: &Db,
    admin: &Admin,
    id: &str,
    action: PersonAction,
) -> Result<Allowed, AdminError> {
    if !admin.may_act_on(&Target::default(), action).allowed() {
        return Err(AdminError::Forbidden);
    }
    let person = db
        .person(id)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or(AdminError::NotFound("person"))?;
    let standing = db.standing(&person.id).await.map_err(anyhow::Error::from)?;
    let roles: Vec<Role> = standing
        .roles
        .iter()
        .filter_map(|(r, d)| Role::parse(r, d))
        .collect();
    let target = Target {
        is_admin: !roles.is_empty(),
        is_super: roles.contains(&Role::SuperAdmin),
        locked_by_super: standing.locked_by_super,
    };
    match admin.may_act_on(&target, action) {
        Verdict::Allowed => Ok(Allowed { person, loud: false }),
        Verdict::AllowedLoudly => Ok(Allowed { person, loud: true }),
        Verdict::Forbidden | Verdict::ForbiddenOnThisPerson => {
            let reason = if target.is_admin {
                "the person holds an admin role"
            } else {
                "the lock was set by a super admin"
            };
            Err(AdminError::NotOnThisPerson {
                person_id: person.id,
                reason,
            })
        }
    }
}

/// The document a counter verification checks (`None`: the identity card).
pub fn verification_document(document: Option<String>) -> Result<String, AdminError> {
    let document = document.unwrap_or_else(|| "idcard".into());
    if document != "idcard" {
        return Err(AdminError::Invalid {
            field: "document",
            message: "the counter verifies with the resident identity card (idcard)".into(),
        });
    }
    Ok(document)
}
