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
        (
            ContactProfile {
                first_name: "Ada\0".into(),
                ..Default::default()
            },
            "first_name",
        ),
    ] {
        let status = client
            .create_contact(authed(&owner, CreateContactRequest { profile: Some(bad) }))
            .await
            .unwrap_err();
        assert_eq!(violated_field(&status), field);
    }
    // Text Postgres cannot store is refused before it can fail a shared identity read.
    for (external_id, display_name, field) in [
        ("+49\0", "", "external_id"),
        ("+4915199", "Ada\0", "display_name"),
    ] {
        let status = client
            .resolve_contact(authed(
                &owner,
                ResolveContactRequest {
                    channel_id: "0190b5a0-0000-7000-8000-000000000000".into(),
                    external_id: external_id.into(),
                    display_name: display_name.into(),
                },
            ))
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

fn import_request(
    csv: &str,
) -> impl futures::Stream<Item = ImportContactsRequest> + Send + 'static {
    use import_contacts_request::Part;
    let settings = ImportSettings {
        columns: ["email", "first_name", "plan", "tags"]
            .iter()
            .map(|c| ColumnMapping {
                column: c.to_string(),
                field: c.to_string(),
            })
            .collect(),
        r#match: ImportMatch::Email as i32,
        channel_id: String::new(),
    };
    // The file arrives in two chunks split mid-row.
    let (head, tail) = csv.split_at(csv.len() / 2);
    futures::stream::iter([
        ImportContactsRequest {
            part: Some(Part::Settings(settings)),
        },
        ImportContactsRequest {
            part: Some(Part::Data(head.as_bytes().to_vec())),
        },
        ImportContactsRequest {
            part: Some(Part::Data(tail.as_bytes().to_vec())),
        },
    ])
}

fn plan_is(value: &str) -> Filter {
    Filter {
        groups: vec![ConditionGroup {
            conditions: vec![Condition {
                kind: Some(condition::Kind::Field(FieldCondition {
                    field: "plan".into(),
                    operator: FieldOperator::Is as i32,
                    values: vec![text(value)],
                })),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn search_segments_streams_merges_imports_and_exports_through_the_server() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let owner = platform.token(&tenant).await;
    let agent = agent_token(&platform, &owner).await;
    let mut client: ContactServiceClient<Channel> =
        ContactServiceClient::new(platform.channel("contacts").connect().await.unwrap());
    client
        .create_contact_field(authed(
            &owner,
            CreateContactFieldRequest {
                field: Some(ContactField {
                    key: "plan".into(),
                    label: "Plan".into(),
                    r#type: FieldType::Select as i32,
                    options: vec!["free".into(), "pro".into()],
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();

    // Import: valid rows applied, the bad one reported; the report can be fetched again.
    let csv = "email,first_name,plan,tags\n\
        ada@example.com,Ada,pro,vip\n\
        grace@navy.mil,Grace,free,navy\n\
        alan@example.org,Alan,gold,\n";
    let import = client
        .import_contacts(authed(&owner, import_request(csv)))
        .await
        .unwrap()
        .into_inner()
        .import
        .unwrap();
    assert_eq!(
        (import.rows, import.created, import.updated, import.failed),
        (3, 2, 0, 1)
    );
    let report = String::from_utf8(import.error_report.clone()).unwrap();
    assert!(report.starts_with("row,column,reason\n4,plan,"), "{report}");
    let fetched = client
        .get_import(authed(&owner, GetImportRequest { id: import.id }))
        .await
        .unwrap()
        .into_inner()
        .import
        .unwrap();
    assert_eq!(fetched.error_report, import.error_report);
    let denied = client
        .import_contacts(authed(&agent, import_request(csv)))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Search with a filter, a total count and keyset pages.
    let search = |filter: Filter, page_token: String| SearchContactsRequest {
        audience: Some(search_contacts_request::Audience::Filter(filter)),
        page_size: 1,
        page_token,
        ..Default::default()
    };
    let page = client
        .search_contacts(authed(&agent, search(plan_is("pro"), String::new())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.total_count, 1);
    assert_eq!(page.contacts[0].first_name, "Ada");
    assert_eq!(page.contacts[0].tags, ["vip"]);
    let everyone = client
        .search_contacts(authed(&agent, search(Filter::default(), String::new())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(everyone.total_count, 2);
    let second = client
        .search_contacts(authed(
            &agent,
            search(Filter::default(), everyone.next_page_token.clone()),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.contacts[0].id, everyone.contacts[0].id);
    assert!(second.next_page_token.is_empty());

    // A malformed filter or page size changes nothing and names the field.
    let mut unknown_operator = plan_is("pro");
    if let Some(condition::Kind::Field(f)) = &mut unknown_operator.groups[0].conditions[0].kind {
        f.operator = 99;
    }
    let bad = client
        .search_contacts(authed(&agent, search(unknown_operator, String::new())))
        .await
        .unwrap_err();
    assert_eq!(violated_field(&bad), "filter");
    let mut name_contains_nul = plan_is("ad\0a");
    if let Some(condition::Kind::Field(f)) = &mut name_contains_nul.groups[0].conditions[0].kind {
        f.field = "first_name".into();
        f.operator = FieldOperator::Contains as i32;
    }
    let text_with_nul = Filter {
        text: "ad\0a".into(),
        ..Filter::default()
    };
    for nul in [name_contains_nul, text_with_nul] {
        let bad = client
            .search_contacts(authed(&agent, search(nul, String::new())))
            .await
            .unwrap_err();
        assert_eq!(violated_field(&bad), "filter");
    }
    let mut big = search(Filter::default(), String::new());
    big.page_size = 101;
    let bad = client
        .search_contacts(authed(&agent, big))
        .await
        .unwrap_err();
    assert_eq!(violated_field(&bad), "page_size");

    // Text Postgres cannot hold is INVALID_ARGUMENT wherever it is stored, even where no
    // field check names it.
    let nul = client
        .create_segment(authed(
            &agent,
            CreateSegmentRequest {
                name: "Pr\0s".into(),
                filter: Some(plan_is("pro")),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_field(&nul), "request");

    // Segments are saved filters; the stream yields every match in batches.
    let segment = client
        .create_segment(authed(
            &agent,
            CreateSegmentRequest {
                name: "Pros".into(),
                filter: Some(plan_is("pro")),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap();
    let mut stream = client
        .stream_contacts(authed(
            &agent,
            StreamContactsRequest {
                audience: Some(stream_contacts_request::Audience::SegmentId(
                    segment.id.clone(),
                )),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        streamed.extend(batch.contacts.into_iter().map(|c| c.first_name));
    }
    assert_eq!(streamed, ["Ada"]);
    let mut stream = client
        .stream_contacts(authed(
            &agent,
            StreamContactsRequest {
                batch_size: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    // One Contact a batch: the second batch's Tag, first met there, is named too.
    let mut batches = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        batches.push(
            batch
                .contacts
                .into_iter()
                .map(|c| (c.first_name, c.tags))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        batches,
        [
            [("Ada".to_owned(), vec!["vip".to_owned()])],
            [("Grace".to_owned(), vec!["navy".to_owned()])]
        ]
    );

    // Export: a header with the custom keys, then one line per Contact.
    let mut export = client
        .export_contacts(authed(&agent, ExportContactsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let mut csv_out = Vec::new();
    while let Some(chunk) = export.message().await.unwrap() {
        csv_out.extend(chunk.data);
    }
    let csv_out = String::from_utf8(csv_out).unwrap();
    let lines: Vec<&str> = csv_out.lines().collect();
    assert!(lines[0].starts_with("id,first_name,") && lines[0].ends_with(",tags,plan"));
    assert_eq!(lines.len(), 3);

    // Duplicates are suggested; a merge is the caller's choice.
    let twin = client
        .create_contact(authed(
            &agent,
            CreateContactRequest {
                profile: Some(ContactProfile {
                    first_name: "Augusta".into(),
                    email: "ADA@example.com".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let groups = client
        .list_duplicates(authed(&agent, ListDuplicatesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].reason, DuplicateReason::Email as i32);
    let ada_id = page.contacts[0].id.clone();
    assert_eq!(groups[0].contact_ids, [ada_id.clone(), twin.id.clone()]);
    let merge = MergeContactsRequest {
        target_id: ada_id.clone(),
        source_id: twin.id.clone(),
        target_version: 1,
        conflicts: MergeSide::Source as i32,
        ..Default::default()
    };
    let denied = client
        .merge_contacts(authed(&agent, merge.clone()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let stale = client
        .merge_contacts(authed(
            &owner,
            MergeContactsRequest {
                target_version: 7,
                ..merge.clone()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let merged = client
        .merge_contacts(authed(&owner, merge))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(
        (merged.first_name.as_str(), merged.tags.clone()),
        ("Augusta", vec!["vip".to_owned()])
    );
    let gone = client
        .get_contact(authed(&agent, GetContactRequest { id: twin.id }))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // A Segment whose field was deleted since no longer runs.
    client
        .delete_contact_field(authed(
            &owner,
            DeleteContactFieldRequest { key: "plan".into() },
        ))
        .await
        .unwrap();
    let stale_segment = client
        .search_contacts(authed(
            &agent,
            SearchContactsRequest {
                audience: Some(search_contacts_request::Audience::SegmentId(segment.id)),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(stale_segment.code(), Code::FailedPrecondition);
}
