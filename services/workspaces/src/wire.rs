//! Proto ↔ domain conversion for the WorkspaceService API.
use ism_platform::auth::Role;
use ism_platform::convert::timestamp;
use ism_platform::error::FieldError;
use ism_proto::workspaces::v1 as pb;

use crate::domain::{Availability, OpeningInterval};
use crate::store;

/// A role a request grants: owner, manager or agent.
pub fn role(role: i32) -> Result<Role, FieldError> {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Owner) => Ok(Role::Owner),
        Ok(pb::Role::Manager) => Ok(Role::Manager),
        Ok(pb::Role::Agent) => Ok(Role::Agent),
        _ => Err(FieldError::new(
            "role",
            "must be ROLE_OWNER, ROLE_MANAGER or ROLE_AGENT",
        )),
    }
}

/// A role a request may leave unset (`ROLE_UNSPECIFIED`: no change).
pub fn role_change(value: i32) -> Option<Result<Role, FieldError>> {
    (value != pb::Role::Unspecified as i32).then(|| role(value))
}

fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Owner => pb::Role::Owner,
        Role::Manager => pb::Role::Manager,
        Role::Agent => pb::Role::Agent,
        Role::Service => pb::Role::Unspecified,
    }
}

pub fn availability(value: i32) -> Result<Availability, FieldError> {
    match pb::Availability::try_from(value) {
        Ok(pb::Availability::Online) => Ok(Availability::Online),
        Ok(pb::Availability::Away) => Ok(Availability::Away),
        Ok(pb::Availability::Offline) => Ok(Availability::Offline),
        _ => Err(FieldError::new(
            "availability",
            "must be AVAILABILITY_ONLINE, AVAILABILITY_AWAY or AVAILABILITY_OFFLINE",
        )),
    }
}

pub fn availability_to_pb(availability: Availability) -> pb::Availability {
    match availability {
        Availability::Online => pb::Availability::Online,
        Availability::Away => pb::Availability::Away,
        Availability::Offline => pb::Availability::Offline,
    }
}

pub fn business_hours(hours: pb::BusinessHours) -> Vec<OpeningInterval> {
    hours
        .intervals
        .into_iter()
        .map(|i| OpeningInterval {
            weekday: i.weekday,
            open: i.open,
            close: i.close,
        })
        .collect()
}

pub fn expires(exp: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: exp,
        nanos: 0,
    })
}

pub fn api_key(key: store::ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        id: key.id.to_string(),
        name: key.name,
        role: role_to_pb(key.role) as i32,
        prefix: key.prefix,
        created_at: Some(timestamp(key.created_at)),
        revoked_at: key.revoked_at.map(timestamp),
    }
}

pub fn workspace(ws: store::Workspace) -> pb::Workspace {
    pb::Workspace {
        id: ws.id.to_string(),
        organization_id: ws.organization_id.to_string(),
        name: ws.name,
        timezone: ws.timezone,
        created_at: Some(timestamp(ws.created_at)),
        default_language: ws.default_language,
        business_hours: Some(pb::BusinessHours {
            intervals: ws
                .business_hours
                .0
                .into_iter()
                .map(|i| pb::BusinessHoursInterval {
                    weekday: i.weekday,
                    open: i.open,
                    close: i.close,
                })
                .collect(),
        }),
    }
}

pub fn organization(org: store::Organization) -> pb::Organization {
    pb::Organization {
        id: org.id.to_string(),
        name: org.name,
        created_at: Some(timestamp(org.created_at)),
    }
}

pub fn user(user: store::User) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        workspace_id: user.workspace_id.to_string(),
        email: user.email,
        display_name: user.display_name,
        role: role_to_pb(user.role) as i32,
        availability: availability_to_pb(user.availability) as i32,
        created_at: Some(timestamp(user.created_at)),
        deactivated_at: user.deactivated_at.map(timestamp),
    }
}

pub fn team(team: store::Team) -> pb::Team {
    pb::Team {
        id: team.id.to_string(),
        name: team.name,
        created_at: Some(timestamp(team.created_at)),
    }
}

pub fn audit_event(event: store::AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        id: event.id.to_string(),
        api_key_id: event
            .actor
            .strip_prefix("api_key:")
            .unwrap_or_default()
            .to_owned(),
        actor: event.actor,
        action: event.action,
        target: event.target,
        details: event.details.0.into_iter().collect(),
        occurred_at: Some(timestamp(event.occurred_at)),
    }
}
