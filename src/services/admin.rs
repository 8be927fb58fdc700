//! Who may administer what. Roles come from a person's grants (`admin_roles`) or, for automation, from
//! the scopes of a client-credentials token. Enforced here, in the services, not only in the UI.

use crate::store::clients::Client;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    SuperAdmin,
    /// Only the apps of this department, and their audit.
    DepartmentAdmin(String),
    /// Looks people up, verifies identity in person, resets a phone, unlocks.
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
