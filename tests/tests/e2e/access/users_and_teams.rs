//! Users and Teams: bad input is refused naming the field and changes nothing, membership
//! shows from both sides, the last owner stays, no one grants more than they hold, the
//! audit log names who did what; and a User's availability is kept and published.
use std::time::Duration;

use ism_e2e::{Api, Platform, Receiver, authed, eventually};
use ism_proto::workspaces::v1 as ws;
use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The field a refusal names: in a `PreconditionFailure` for FAILED_PRECONDITION, in a
/// `BadRequest` otherwise, as every service answers.
fn field_of(status: &Status) -> String {
    if status.code() == Code::FailedPrecondition {
        return status
            .get_details_precondition_failure()
            .and_then(|p| p.violations.first().map(|v| v.subject.clone()))
            .unwrap_or_default();
    }
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn users_teams_and_their_bad_input_leave_nothing_changed() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let other = platform.bootstrap(&receiver.url);
    let owner = platform.api(&tenant).await;
    let other_owner = owner.with_token(platform.token(&other).await);
    let mut w = owner.workspaces.clone();

    let ada = owner
        .create_user("Ada@Example.com", "Ada", ws::Role::Agent)
        .await;
    let team = owner.create_team("Sales").await;
    // Emails are unique per Workspace only.
    let outsider = other_owner
        .create_user("ada@example.com", "Other Ada", ws::Role::Agent)
        .await;
    let before = snapshot_users(&owner).await;

    let cases: Vec<(&str, Code, &str, Result<(), Status>)> = vec![
        (
            "empty team name",
            Code::InvalidArgument,
            "name",
            w.create_team(owner.authed(ws::CreateTeamRequest { name: "  ".into() }))
                .await
                .map(drop),
        ),
        (
            "long team name",
            Code::InvalidArgument,
            "name",
            w.rename_team(owner.authed(ws::RenameTeamRequest {
                id: team.id.clone(),
                name: "x".repeat(101),
            }))
            .await
            .map(drop),
        ),
        (
            "duplicate team name",
            Code::AlreadyExists,
            "name",
            w.create_team(owner.authed(ws::CreateTeamRequest {
                name: "sales".into(),
            }))
            .await
            .map(drop),
        ),
        (
            "unknown role",
            Code::InvalidArgument,
            "role",
            w.create_user(owner.authed(ws::CreateUserRequest {
                email: "bob@example.com".into(),
                display_name: "Bob".into(),
                role: 42,
            }))
            .await
            .map(drop),
        ),
        (
            "bad email",
            Code::InvalidArgument,
            "email",
            w.create_user(owner.authed(ws::CreateUserRequest {
                email: "bob".into(),
                display_name: "Bob".into(),
                role: ws::Role::Agent as i32,
            }))
            .await
            .map(drop),
        ),
        (
            "empty user name",
            Code::InvalidArgument,
            "display_name",
            w.create_user(owner.authed(ws::CreateUserRequest {
                email: "bob@example.com".into(),
                display_name: String::new(),
                role: ws::Role::Agent as i32,
            }))
            .await
            .map(drop),
        ),
        (
            "duplicate email",
            Code::AlreadyExists,
            "email",
            w.create_user(owner.authed(ws::CreateUserRequest {
                email: "ADA@example.com".into(),
                display_name: "Ada 2".into(),
                role: ws::Role::Agent as i32,
            }))
            .await
            .map(drop),
        ),
        (
            "another workspace's user",
            Code::FailedPrecondition,
            "user_id",
            w.add_team_member(owner.authed(ws::AddTeamMemberRequest {
                team_id: team.id.clone(),
                user_id: outsider.id.clone(),
            }))
            .await
            .map(drop),
        ),
        (
            "deactivating the last owner",
            Code::FailedPrecondition,
            "id",
            w.deactivate_user(owner.authed(ws::DeactivateUserRequest {
                id: tenant.owner_user_id.clone(),
            }))
            .await
            .map(drop),
        ),
        (
            "demoting the last owner",
            Code::FailedPrecondition,
            "id",
            w.update_user(owner.authed(ws::UpdateUserRequest {
                id: tenant.owner_user_id.clone(),
                display_name: None,
                role: ws::Role::Agent as i32,
            }))
            .await
            .map(drop),
        ),
        (
            "bad time zone",
            Code::InvalidArgument,
            "timezone",
            w.update_workspace(owner.authed(ws::UpdateWorkspaceRequest {
                timezone: Some("Mars/Base".into()),
                ..Default::default()
            }))
            .await
            .map(drop),
        ),
        (
            "closing before opening",
            Code::InvalidArgument,
            "business_hours",
            w.update_workspace(owner.authed(ws::UpdateWorkspaceRequest {
                business_hours: Some(ws::BusinessHours {
                    intervals: vec![ws::BusinessHoursInterval {
                        weekday: 1,
                        open: "18:00".into(),
                        close: "09:00".into(),
                    }],
                }),
                ..Default::default()
            }))
            .await
            .map(drop),
        ),
    ];
    for (what, code, field, result) in cases {
        let status = result.expect_err(what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert_eq!(field_of(&status), field, "{what}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{what}: {}",
            status.message()
        );
    }
    assert_eq!(
        snapshot_users(&owner).await,
        before,
        "bad input changed something"
    );

    // Membership is visible from both sides.
    owner.add_team_member(&team.id, &ada.id).await;
    let members = owner.list_team_members(&team.id).await;
    assert_eq!(
        members.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        [ada.id.as_str()]
    );
    let teams = owner.list_user_teams(&ada.id).await;
    assert_eq!(
        teams.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["Sales"]
    );

    // Settings round-trip.
    let updated = owner
        .update_workspace(ws::UpdateWorkspaceRequest {
            timezone: Some("America/Sao_Paulo".into()),
            default_language: Some("pt-BR".into()),
            business_hours: Some(ws::BusinessHours {
                intervals: vec![ws::BusinessHoursInterval {
                    weekday: 1,
                    open: "9:00".into(),
                    close: "18:00".into(),
                }],
            }),
            ..Default::default()
        })
        .await;
    assert_eq!(
        (updated.timezone.as_str(), updated.default_language.as_str()),
        ("America/Sao_Paulo", "pt-BR")
    );
    assert_eq!(updated.business_hours.unwrap().intervals[0].open, "09:00");

    // A second owner makes the first one removable.
    let grace = owner
        .create_user("grace@example.com", "Grace", ws::Role::Owner)
        .await;
    let demoted = owner
        .update_user(ws::UpdateUserRequest {
            id: tenant.owner_user_id.clone(),
            display_name: None,
            role: ws::Role::Manager as i32,
        })
        .await;
    assert_eq!(demoted.role, ws::Role::Manager as i32);

    // A manager's user token cannot mint an owner's token or make owners.
    let manager = owner.issue_user_token(&tenant.owner_user_id).await;
    let escalate = w
        .issue_user_token(authed(
            &manager,
            ws::IssueUserTokenRequest {
                user_id: grace.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(escalate.code(), Code::PermissionDenied);
    let promote = w
        .update_user(authed(
            &manager,
            ws::UpdateUserRequest {
                id: ada.id.clone(),
                display_name: None,
                role: ws::Role::Owner as i32,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(promote.code(), Code::PermissionDenied);
    let rename_owner = w
        .update_user(authed(
            &manager,
            ws::UpdateUserRequest {
                id: grace.id.clone(),
                display_name: Some("Not Grace".into()),
                role: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        rename_owner.code(),
        Code::PermissionDenied,
        "only owners touch owners, a rename included"
    );
    assert_eq!(owner.get_user(&grace.id).await.display_name, "Grace");

    // The audit log says who did what, with which key.
    let events = owner.list_audit_events().await;
    let demotion = events
        .iter()
        .find(|e| {
            e.action == "user.updated" && e.target == format!("user:{}", tenant.owner_user_id)
        })
        .expect("demotion audited");
    assert!(
        demotion.actor.starts_with("api_key:") && !demotion.api_key_id.is_empty(),
        "{demotion:?}"
    );
    assert_eq!(
        demotion.details.get("role").map(String::as_str),
        Some("manager")
    );
    assert!(events.iter().any(|e| e.action == "user.token_issued"));
    assert!(
        events
            .iter()
            .all(|e| e.action != "team.created"
                || e.details.get("name") != Some(&"sales".to_owned()))
    );
    let agent = owner.key_token("role", ws::Role::Agent).await;
    assert_eq!(
        w.list_audit_events(authed(&agent, ws::ListAuditEventsRequest::default()))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}

/// The Users (deactivated too), Teams and settings of the Workspace.
async fn snapshot_users(api: &Api) -> String {
    let users = api.list_users(true).await;
    let teams = api.list_teams().await;
    let workspace = api.get_workspace().await;
    format!("{users:?}{teams:?}{workspace:?}")
}

#[tokio::test]
async fn availability_is_kept_and_published_as_an_event() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let owner = platform.api(&tenant).await;
    let mut w = owner.workspaces.clone();
    let amqp =
        lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default())
            .await
            .unwrap();
    let channel = amqp.create_channel().await.unwrap();
    let queue = format!("{}.test.availability", platform.id);
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            platform.exchange().as_str().into(),
            "workspaces.user.availability_changed".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();

    let agent = owner
        .create_user("agent@example.com", "Agent", ws::Role::Agent)
        .await;
    let other = owner
        .create_user("other@example.com", "Other", ws::Role::Agent)
        .await;
    assert_eq!(agent.availability, ws::Availability::Offline as i32);
    let as_agent = owner.with_token(owner.issue_user_token(&agent.id).await);

    // The agent sets their own availability, but nobody else's.
    let online = as_agent
        .set_user_availability(&agent.id, ws::Availability::Online)
        .await;
    assert_eq!(online.availability, ws::Availability::Online as i32);
    let status = w
        .set_user_availability(as_agent.authed(ws::SetUserAvailabilityRequest {
            user_id: other.id.clone(),
            availability: ws::Availability::Online as i32,
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let fetched = as_agent.get_user(&agent.id).await;
    assert_eq!(fetched.availability, ws::Availability::Online as i32);

    let delivery = eventually(Duration::from_secs(20), "the availability event", || {
        let channel = channel.clone();
        let queue = queue.clone();
        async move {
            channel
                .basic_get(
                    queue.as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .ok()?
        }
    })
    .await;
    let event = ism_proto::events::v1::Event::decode(delivery.delivery.data.as_slice()).unwrap();
    assert_eq!(event.r#type, "workspaces.user.availability_changed");
    assert_eq!(event.workspace_id, tenant.workspace_id);
    let payload: ism_proto::events::v1::UserAvailabilityChanged =
        event.payload.unwrap().to_msg().unwrap();
    assert_eq!(
        (
            payload.user_id.as_str(),
            payload.availability(),
            payload.previous_availability()
        ),
        (
            agent.id.as_str(),
            ws::Availability::Online,
            ws::Availability::Offline
        )
    );

    // Deactivation takes the User offline and stops new tokens for them.
    let gone = owner.deactivate_user(&agent.id).await;
    assert_eq!(gone.availability, ws::Availability::Offline as i32);
    assert!(gone.deactivated_at.is_some());
    let status = w
        .issue_user_token(owner.authed(ws::IssueUserTokenRequest {
            user_id: agent.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let listed = owner.list_users(false).await;
    assert!(
        listed.iter().all(|u| u.id != agent.id),
        "deactivated Users are hidden by default"
    );
}
