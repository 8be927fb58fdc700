//! Who may administer what. Roles come from a person's grants (`admin_roles`) or, for automation, from
//! the scopes of a client-credentials token. Enforced here, in the services, not only in the UI.

pub mod clients;
pub mod persons;

use crate::store::clients::Client;

/// Why an administrator's request is refused (the admin API maps these to problems, the console to
/// pages).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The administrator's roles do not allow the action.
    #[error("not allowed")]
    Forbidden,
    /// The roles would allow it on an ordinary person; on this one, super admins only.
    #[error("not allowed ({reason}: super admins only)")]
    NotOnThisPerson { person_id: String, reason: &'static str },
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    SuperAdmin,
    /// Only the apps of this department, and their audit.
    DepartmentAdmin(String),
    /// Looks people up, verifies identity in person, resets a phone or password, unlocks — on persons
    /// without an admin role, and not a super admin's lock ([`Admin::may_act_on`]).
    CounterClerk,
    /// Reads the audit trail.
    Auditor,
    /// The e-licence library: pushes licences and types.
    LicenceLibrary,
}

impl Role {
    /// The role a token scope grants (`yunid:admin`, `yunid:dept:<code>`, `yunid:counter`, …).
    pub fn from_scope(scope: &str) -> Option<Role> {
        match scope {
            "yunid:admin" => Some(Role::SuperAdmin),
            "yunid:counter" => Some(Role::CounterClerk),
            "yunid:audit" => Some(Role::Auditor),
            "yunid:licences" => Some(Role::LicenceLibrary),
            s => s
                .strip_prefix("yunid:dept:")
                .filter(|d| !d.is_empty())
                .map(|d| Role::DepartmentAdmin(d.to_owned())),
        }
    }

    /// The stored form: (role, department).
    pub fn parse(role: &str, department: &str) -> Option<Role> {
        match role {
            "super_admin" => Some(Role::SuperAdmin),
            "department_admin" if !department.is_empty() => {
                Some(Role::DepartmentAdmin(department.to_owned()))
            }
            "counter_clerk" => Some(Role::CounterClerk),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// An authenticated administrator (a person or an automation client) and what they may do.
#[derive(Debug, Clone)]
pub struct Admin {
    /// `person:<id>` or `client:<id>`, as written in the audit trail.
    pub actor: String,
    pub roles: Vec<Role>,
}

impl Admin {
    pub fn is_super(&self) -> bool {
        self.roles.contains(&Role::SuperAdmin)
    }

    pub fn has(&self, role: &Role) -> bool {
        self.is_super() || self.roles.contains(role)
    }

    /// Persons: super admins manage; counter clerks look up, verify, unlock, reset phones.
    pub fn can_look_up_persons(&self) -> bool {
        self.has(&Role::CounterClerk)
    }

    /// Representations (who may act for an organisation): recorded and revoked by super admins and by
    /// counter clerks, who check the papers (business licence, letter of authorisation) in person.
    pub fn can_manage_representations(&self) -> bool {
        self.has(&Role::CounterClerk)
    }

    /// Creating persons and resetting their credentials (password, phone) happens at the counter.
    pub fn can_register_persons(&self) -> bool {
        self.has(&Role::CounterClerk)
    }

    /// A name changes only on a super admin's decision (it is what apps see as the legal name).
    pub fn can_rename_persons(&self) -> bool {
        self.is_super()
    }

    /// Organisations and representations: read by counter clerks and auditors too.
    pub fn can_read_orgs(&self) -> bool {
        self.has(&Role::CounterClerk) || self.has(&Role::Auditor)
    }

    /// Organisations and representations recorded from the business registry: super admins only.
    pub fn can_manage_orgs(&self) -> bool {
        self.is_super()
    }

    /// A counter clerk records an agent appointment a representative makes in person (the appointment
    /// rules still apply), and revokes a representation the organisation ends in person.
    pub fn can_record_appointments(&self) -> bool {
        self.has(&Role::CounterClerk)
    }

    /// Seeing an app's settings: whoever manages it, and auditors.
    pub fn can_read_client(&self, client: &Client) -> bool {
        self.can_manage_client(client) || self.has(&Role::Auditor)
    }

    /// An app is managed by super admins and by the admins of its department.
    pub fn can_manage_client(&self, client: &Client) -> bool {
        self.is_super()
            || (!client.department.is_empty()
                && self
                    .roles
                    .contains(&Role::DepartmentAdmin(client.department.clone())))
    }

    pub fn can_create_client_in(&self, department: &str) -> bool {
        self.is_super()
            || (!department.is_empty() && self.roles.contains(&Role::DepartmentAdmin(department.to_owned())))
    }

    /// The whole trail (super admins, auditors), or a department's apps' events.
    pub fn can_read_all_audit(&self) -> bool {
        self.has(&Role::Auditor)
    }

    pub fn departments(&self) -> Vec<&str> {
        self.roles
            .iter()
            .filter_map(|r| match r {
                Role::DepartmentAdmin(d) => Some(d.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// What an admin does to a person's account (the counter's and the super admin's person actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonAction {
    Lock,
    Disable,
    Unlock,
    Verify,
    EndSessions,
    ResetPassword,
    ChangePhone,
    Rename,
}

impl PersonAction {
    /// What the admin's roles allow on an ordinary person (no admin role, no super admin's lock).
    fn allowed_by_role(self, admin: &Admin) -> bool {
        match self {
            PersonAction::Lock | PersonAction::Disable | PersonAction::Rename => admin.is_super(),
            PersonAction::Unlock | PersonAction::Verify | PersonAction::EndSessions => {
                admin.has(&Role::CounterClerk)
            }
            PersonAction::ResetPassword | PersonAction::ChangePhone => admin.can_register_persons(),
        }
    }
}

/// The person acted on, as far as "who may act on whom" needs to know them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The person holds at least one admin role (any role: a clerk's credentials open the counter).
    pub is_admin: bool,
    /// The person is a super admin.
    pub is_super: bool,
    /// The account's lock (or disabling) was set by a super admin.
    pub locked_by_super: bool,
}

/// The answer of [`Admin::may_act_on`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Allowed, but a super admin acts on a super admin: audited and logged loudly, because one super
    /// admin taking over another's account is the one takeover no role check can stop.
    AllowedLoudly,
    /// The role does not allow it at all.
    Forbidden,
    /// The role would allow it on an ordinary person; this person is an admin, or the lock is a super
    /// admin's: super admins only.
    ForbiddenOnThisPerson,
}

impl Verdict {
    pub fn allowed(self) -> bool {
        matches!(self, Verdict::Allowed | Verdict::AllowedLoudly)
    }
}

impl Admin {
    /// Who may act on whom. A counter clerk's powers over credentials (password, phone) and status are
    /// the powers to take an account over; on an administrator's account they would let a clerk become
    /// that administrator. So every action on a person who holds an admin role, and lifting a lock a
    /// super admin set, is for super admins only.
    pub fn may_act_on(&self, target: &Target, action: PersonAction) -> Verdict {
        if !action.allowed_by_role(self) {
            return Verdict::Forbidden;
        }
        let lifts_super_lock = action == PersonAction::Unlock && target.locked_by_super;
        if (target.is_admin || target.is_super || lifts_super_lock) && !self.is_super() {
            return Verdict::ForbiddenOnThisPerson;
        }
        if target.is_super && self.is_super() {
            return Verdict::AllowedLoudly;
        }
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(roles: Vec<Role>) -> Admin {
        Admin {
            actor: "person:a".into(),
            roles,
        }
    }

    const ALL: [PersonAction; 8] = [
        PersonAction::Lock,
        PersonAction::Disable,
        PersonAction::Unlock,
        PersonAction::Verify,
        PersonAction::EndSessions,
        PersonAction::ResetPassword,
        PersonAction::ChangePhone,
        PersonAction::Rename,
    ];

    #[test]
    fn a_clerk_acts_on_citizens_but_on_no_administrator() {
        let clerk = admin(vec![Role::CounterClerk]);
        let citizen = Target::default();
        for action in [
            PersonAction::Unlock,
            PersonAction::Verify,
            PersonAction::EndSessions,
            PersonAction::ResetPassword,
            PersonAction::ChangePhone,
        ] {
            assert_eq!(clerk.may_act_on(&citizen, action), Verdict::Allowed, "{action:?}");
        }
        for target in [
            Target {
                is_admin: true,
                ..Target::default()
            },
            Target {
                is_admin: true,
                is_super: true,
                ..Target::default()
            },
        ] {
            for action in ALL {
                assert!(
                    !clerk.may_act_on(&target, action).allowed(),
                    "{action:?} on {target:?}"
                );
            }
        }
    }

    #[test]
    fn only_a_super_admin_lifts_a_super_admins_lock() {
        let locked = Target {
            locked_by_super: true,
            ..Target::default()
        };
        assert_eq!(
            admin(vec![Role::CounterClerk]).may_act_on(&locked, PersonAction::Unlock),
            Verdict::ForbiddenOnThisPerson
        );
        assert_eq!(
            admin(vec![Role::SuperAdmin]).may_act_on(&locked, PersonAction::Unlock),
            Verdict::Allowed
        );
        assert_eq!(
            admin(vec![Role::CounterClerk]).may_act_on(&Target::default(), PersonAction::Unlock),
            Verdict::Allowed,
            "a lock nobody with authority set is the counter's to lift"
        );
    }

    #[test]
    fn a_super_admin_acting_on_a_super_admin_is_loud() {
        let root = admin(vec![Role::SuperAdmin]);
        let other_root = Target {
            is_admin: true,
            is_super: true,
            ..Target::default()
        };
        for action in ALL {
            assert_eq!(root.may_act_on(&other_root, action), Verdict::AllowedLoudly);
        }
        let clerk = Target {
            is_admin: true,
            ..Target::default()
        };
        assert_eq!(
            root.may_act_on(&clerk, PersonAction::ResetPassword),
            Verdict::Allowed
        );
    }

    #[test]
    fn roles_without_person_powers_act_on_nobody() {
        for roles in [
            vec![Role::Auditor],
            vec![Role::LicenceLibrary],
            vec![Role::DepartmentAdmin("tax".into())],
        ] {
            for action in ALL {
                assert_eq!(
                    admin(roles.clone()).may_act_on(&Target::default(), action),
                    Verdict::Forbidden
                );
            }
        }
    }
}

/// Scopes whose release is a province-wide decision: resident ID numbers, organisations, e-licences.
pub const RELEASE_SCOPES: [&str; 3] = ["identity", "org", "licences"];

/// An app's settings that decide whose data it may receive.
pub struct ReleaseSettings<'a> {
    pub scopes: &'a [String],
    pub public_subjects: bool,
    pub redirect_uris: &'a [String],
}

/// The first setting in `after` that only a super admin may give an app (`before`: what it has now,
/// `None` for a new app): a release scope it did not hold, public subjects (every app would see the same
/// identifier, joinable across departments), or a redirect URI on a host other than the app's pairwise
/// sector (codes sent to another department's host). `None` when a department admin may make the change.
pub fn needs_super_admin(
    before: Option<(&ReleaseSettings<'_>, &str)>,
    after: &ReleaseSettings<'_>,
) -> Option<&'static str> {
    let held = |s: &str| before.is_some_and(|(b, _)| b.scopes.iter().any(|h| h == s));
    if after
        .scopes
        .iter()
        .any(|s| RELEASE_SCOPES.contains(&s.as_str()) && !held(s))
    {
        return Some("scopes");
    }
    if after.public_subjects && !before.is_some_and(|(b, _)| b.public_subjects) {
        return Some("subject_type");
    }
    if let Some((_, sector)) = before {
        let elsewhere = after.redirect_uris.iter().any(|u| {
            url::Url::parse(u)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .is_none_or(|h| {
                    h != sector
                        && !(sector.starts_with("client:") && crate::services::registry::is_loopback_host(&h))
                })
        });
        if elsewhere {
            return Some("redirect_uris");
        }
    }
    None
}

#[cfg(test)]
mod release_tests {
    use super::*;

    fn settings<'a>(scopes: &'a [String], public: bool, uris: &'a [String]) -> ReleaseSettings<'a> {
        ReleaseSettings {
            scopes,
            public_subjects: public,
            redirect_uris: uris,
        }
    }

    #[test]
    fn only_a_super_admin_widens_what_an_app_receives() {
        let plain = vec!["openid".to_owned(), "profile".to_owned()];
        let with_identity = vec!["openid".to_owned(), "identity".to_owned()];
        let own = vec!["https://tax.example.gov.cn/cb".to_owned()];
        let other = vec!["https://health.example.gov.cn/cb".to_owned()];
        let now = settings(&plain, false, &own);
        let before = Some((&now, "tax.example.gov.cn"));
        assert_eq!(needs_super_admin(before, &settings(&plain, false, &own)), None);
        assert_eq!(
            needs_super_admin(before, &settings(&with_identity, false, &own)),
            Some("scopes")
        );
        assert_eq!(
            needs_super_admin(before, &settings(&plain, true, &own)),
            Some("subject_type")
        );
        assert_eq!(
            needs_super_admin(before, &settings(&plain, false, &other)),
            Some("redirect_uris")
        );
        assert_eq!(
            needs_super_admin(None, &settings(&with_identity, false, &own)),
            Some("scopes")
        );
        assert_eq!(needs_super_admin(None, &settings(&plain, false, &other)), None);
        // An app keeps what a super admin gave it.
        let held = settings(&with_identity, true, &own);
        assert_eq!(
            needs_super_admin(
                Some((&held, "tax.example.gov.cn")),
                &settings(&with_identity, true, &own)
            ),
            None
        );
    }
}
