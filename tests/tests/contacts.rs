//! The ContactService through the real `ism` server: profiles, Contact Fields and Tags,
//! the codes a caller's mistakes get, roles, and the wall between workspaces.
use ism_e2e::{Platform, Receiver, authed};
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::contacts::v1::field_value::Kind;
use ism_proto::contacts::v1::*;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use ism_proto::workspaces::v1::{CreateApiKeyRequest, ExchangeApiKeyRequest, Role};
use tonic::transport::Channel;
use tonic::{Code, Status};

fn text(s: &str) -> FieldValue {
    FieldValue {
        kind: Some(Kind::Text(s.into())),
    }
}

/// The field an INVALID_ARGUMENT answer names (its message starts `<field>: `).
fn violated_field(status: &Status) -> String {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .message()
        .split_once(':')
        .map(|(field, _)| field.to_owned())
        .unwrap_or_default()
}

async fn agent_token(platform: &Platform, owner: &str) -> String {
    let mut workspaces =
        WorkspaceServiceClient::new(platform.channel("workspaces").connect().await.unwrap());
    let key = workspaces
        .create_api_key(authed(
            owner,
            CreateApiKeyRequest {
                name: "agent".into(),
                role: Role::Agent as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    workspaces
        .exchange_api_key(ExchangeApiKeyRequest { api_key: key })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

#[tokio::test]
async fn contacts_fields_and_tags_through_the_server() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let owner = platform.token(&tenant).await;
    let agent = agent_token(&platform, &owner).await;
    let other = platform.token(&platform.bootstrap(&receiver.url)).await;
    let mut client: ContactServiceClient<Channel> =
        ContactServiceClient::new(platform.channel("contacts").connect().await.unwrap());

    // Managers define fields; agents may not.
    let plan = ContactField {
        key: "plan".into(),
        label: "Plan".into(),
        r#type: FieldType::Select as i32,
        options: vec!["free".into(), "pro".into()],
        ..Default::default()
    };
    let denied = client
        .create_contact_field(authed(
            &agent,
            CreateContactFieldRequest {
                field: Some(plan.clone()),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    client
        .create_contact_field(authed(
            &owner,
            CreateContactFieldRequest { field: Some(plan) },
        ))
        .await
        .unwrap();

    // Create with default fields normalized and a custom value.
    let profile = ContactProfile {
        first_name: "Ada".into(),
        email: "Ada@Example.com".into(),
        phone: "+49 151 12345678".into(),
        timezone: "Europe/London".into(),
        custom_fields: [("plan".to_owned(), text("free"))].into(),
        ..Default::default()
    };
    let ada = client
        .create_contact(authed(
            &agent,
            CreateContactRequest {
                profile: Some(profile.clone()),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(
        (ada.email.as_str(), ada.phone.as_str(), ada.version),
        ("ada@example.com", "+4915112345678", 1)
    );
    assert_eq!(ada.custom_fields["plan"], text("free"));

    // Bad input is INVALID_ARGUMENT naming the field.
    for (bad, field) in [
        (
            ContactProfile {
                email: "nope".into(),
                ..Default::default()
            },
            "email",
        ),
        (
            ContactProfile {
                custom_fields: [("plan".to_owned(), text("gold"))].into(),
                ..Default::default()
            },
            "custom_fields",
        ),
        (
            ContactProfile {
                custom_fields: [("unknown".to_owned(), text("x"))].into(),
                ..Default::default()
            },
            "custom_fields",
        ),
    ] {
        let status = client
            .create_contact(authed(&owner, CreateContactRequest { profile: Some(bad) }))
            .await
            .unwrap_err();
        assert_eq!(violated_field(&status), field);
    }

    // Partial update at the version read; a stale version is FAILED_PRECONDITION.
    let update = UpdateContactRequest {
        id: ada.id.clone(),
        version: 1,
        last_name: Some("Lovelace".into()),
        custom_fields: [("plan".to_owned(), text("pro"))].into(),
        ..Default::default()
    };
    let updated = client
        .update_contact(authed(&agent, update.clone()))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(
        (
            updated.first_name.as_str(),
            updated.last_name.as_str(),
            updated.version
        ),
        ("Ada", "Lovelace", 2)
    );
    let stale = client
        .update_contact(authed(&agent, update))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);

    // Tags, in bulk, with counts.
    let added = client
        .add_tags(authed(
            &agent,
            AddTagsRequest {
                contact_ids: vec![ada.id.clone()],
                tags: vec!["VIP".into(), "lead".into()],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .added;
    assert_eq!(added, 2);
    let tags = client
        .list_tags(authed(&agent, ListTagsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(
        tags.iter()
            .map(|t| (t.name.as_str(), t.contact_count))
            .collect::<Vec<_>>(),
        [("lead", 1), ("VIP", 1)]
    );

    // Another workspace sees none of it.
    let get = GetContactRequest { id: ada.id.clone() };
    let foreign = client
        .get_contact(authed(&other, get.clone()))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let foreign_tag = client
        .add_tags(authed(
            &other,
            AddTagsRequest {
                contact_ids: vec![ada.id.clone()],
                tags: vec!["x".into()],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign_tag.code(), Code::NotFound);
    assert!(
        client
            .list_tags(authed(&other, ListTagsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .tags
            .is_empty()
    );

    // Block, then delete (managers only) and restore.
    let blocked = client
        .set_contact_blocked(authed(
            &agent,
            SetContactBlockedRequest {
                id: ada.id.clone(),
                blocked: true,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert!(blocked.blocked);
    let delete = DeleteContactRequest { id: ada.id.clone() };
    assert_eq!(
        client
            .delete_contact(authed(&agent, delete.clone()))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    client.delete_contact(authed(&owner, delete)).await.unwrap();
    assert_eq!(
        client
            .get_contact(authed(&owner, get.clone()))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let restored = client
        .restore_contact(authed(&owner, RestoreContactRequest { id: ada.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(restored.tags, ["lead", "VIP"]);

    // Page sizes out of range are refused.
    let page = client
        .list_contacts(authed(
            &owner,
            ListContactsRequest {
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_field(&page), "page_size");
}
