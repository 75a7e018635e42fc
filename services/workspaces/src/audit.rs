//! The audit log's vocabulary: who acted, what they did, and to what. Every change a use
//! case makes is recorded in its transaction (`store::audit`).
use std::collections::BTreeMap;
use std::fmt;

use ism_platform::auth::{Caller, Role, Subject};
use uuid::Uuid;

use crate::error::Error;

/// Who acts, as the audit log names them, and the role they act with.
#[derive(Debug, Clone)]
pub struct Actor {
    subject: Subject,
    name: String,
    role: Role,
}

impl Actor {
    /// The caller of an RPC.
    pub fn caller(caller: &Caller) -> Self {
        Self {
            subject: caller.subject.clone(),
            name: caller.actor().to_owned(),
            role: caller.role,
        }
    }

    /// An operator bootstrapping from the command line (`ism admin`), with an owner's
    /// rights.
    pub fn operator() -> Self {
        let subject = Subject::Other("operator:cli".to_owned());
        Self {
            name: subject.to_string(),
            subject,
            role: Role::Owner,
        }
    }

    /// The actor as stored with what it did (`user:<id>`, `api_key:<id>`, `operator:cli`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the actor is the User `user_id` acting for themselves.
    pub fn is_user(&self, user_id: Uuid) -> bool {
        self.subject == Subject::User(user_id)
    }

    /// PERMISSION_DENIED unless the actor's role allows `required`.
    pub fn require(&self, required: Role) -> Result<(), Error> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(
                format!(
                    "the {} role may not do this; it needs {required}",
                    self.role
                )
                .into(),
            ))
        }
    }

    /// PERMISSION_DENIED when the actor would grant or act with more than its own role.
    pub fn not_above(&self, role: Role) -> Result<(), Error> {
        if self.role.allows(role) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(
                "a role may only grant or act with roles up to its own".into(),
            ))
        }
    }
}

ism_platform::stored_enum! {
    /// What an audited change did.
    pub enum Action {
        OrganizationRenamed = "organization.renamed",
        WorkspaceCreated = "workspace.created",
        WorkspaceUpdated = "workspace.updated",
        WorkspaceArchived = "workspace.archived",
        ApiKeyCreated = "api_key.created",
        ApiKeyRevoked = "api_key.revoked",
        UserCreated = "user.created",
        UserUpdated = "user.updated",
        UserDeactivated = "user.deactivated",
        UserTokenIssued = "user.token_issued",
        TeamCreated = "team.created",
        TeamRenamed = "team.renamed",
        TeamDeleted = "team.deleted",
        TeamMemberAdded = "team.member_added",
        TeamMemberRemoved = "team.member_removed",
    }
}

/// What an audited change touched, stored as `<kind>:<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Organization(Uuid),
    Workspace(Uuid),
    ApiKey(Uuid),
    User(Uuid),
    Team(Uuid),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Organization(id) => write!(f, "organization:{id}"),
            Target::Workspace(id) => write!(f, "workspace:{id}"),
            Target::ApiKey(id) => write!(f, "api_key:{id}"),
            Target::User(id) => write!(f, "{}", Subject::User(*id)),
            Target::Team(id) => write!(f, "team:{id}"),
        }
    }
}

/// An audit entry's details from `(key, value)` pairs.
pub fn details<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
