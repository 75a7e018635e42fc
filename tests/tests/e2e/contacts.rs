//! The ContactService through the real `ism` server: profiles, Contact Fields and Tags,
//! the codes a caller's mistakes get, roles, and the wall between workspaces.
use ism_e2e::{Api, Platform, Receiver, Tenant};
use ism_proto::contacts::v1::field_value::Kind;
use ism_proto::contacts::v1::*;
use ism_proto::workspaces::v1::Role;
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

/// The tenant's owner, and an agent of the same Workspace.
async fn owner_and_agent(platform: &Platform, tenant: &Tenant) -> (Api, Api) {
    let owner = platform.api(tenant).await;
    let agent = owner.with_token(owner.key_token("agent", Role::Agent).await);
    (owner, agent)
}

/// The Select field `plan`: free or pro.
fn plan_field() -> ContactField {
    ContactField {
        key: "plan".into(),
        label: "Plan".into(),
        r#type: FieldType::Select as i32,
        options: vec!["free".into(), "pro".into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn contacts_fields_and_tags_through_the_server() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let (owner, agent) = owner_and_agent(&platform, &tenant).await;
    let other = owner.with_token(platform.token(&platform.bootstrap(&receiver.url)).await);
    let mut client = owner.contacts.clone();

    // Managers define fields; agents may not.
    let denied = client
        .create_contact_field(agent.authed(CreateContactFieldRequest {
            field: Some(plan_field()),
        }))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    owner.create_contact_field(plan_field()).await;

    // Create with default fields normalized and a custom value.
    let profile = ContactProfile {
        first_name: "Ada".into(),
        email: "Ada@Example.com".into(),
        phone: "+49 151 12345678".into(),
        timezone: "Europe/London".into(),
        custom_fields: [("plan".to_owned(), text("free"))].into(),
        ..Default::default()
    };
    let ada = agent.create_contact(profile.clone()).await;
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
            "profile.first_name",
        ),
    ] {
        let status = client
            .create_contact(owner.authed(CreateContactRequest { profile: Some(bad) }))
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
            .resolve_contact(owner.authed(ResolveContactRequest {
                channel_id: "0190b5a0-0000-7000-8000-000000000000".into(),
                external_id: external_id.into(),
                display_name: display_name.into(),
            }))
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
    let updated = agent.update_contact(update.clone()).await;
    assert_eq!(
        (
            updated.first_name.as_str(),
            updated.last_name.as_str(),
            updated.version
        ),
        ("Ada", "Lovelace", 2)
    );
    let stale = client
        .update_contact(agent.authed(update))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);

    // Tags, in bulk, with counts.
    let added = agent.add_tags(vec![ada.id.clone()], &["VIP", "lead"]).await;
    assert_eq!(added, 2);
    let tags = agent.list_tags().await;
    assert_eq!(
        tags.iter()
            .map(|t| (t.name.as_str(), t.contact_count))
            .collect::<Vec<_>>(),
        [("lead", 1), ("VIP", 1)]
    );

    // Another workspace sees none of it.
    let get = GetContactRequest { id: ada.id.clone() };
    let foreign = client
        .get_contact(other.authed(get.clone()))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let foreign_tag = client
        .add_tags(other.authed(AddTagsRequest {
            contact_ids: vec![ada.id.clone()],
            tags: vec!["x".into()],
        }))
        .await
        .unwrap_err();
    assert_eq!(foreign_tag.code(), Code::NotFound);
    assert!(other.list_tags().await.is_empty());

    // Block, then delete (managers only) and restore.
    let blocked = agent.set_contact_blocked(&ada.id, true).await;
    assert!(blocked.blocked);
    let delete = DeleteContactRequest { id: ada.id.clone() };
    assert_eq!(
        client
            .delete_contact(agent.authed(delete))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    owner.delete_contact(&ada.id).await;
    assert_eq!(
        client
            .get_contact(owner.authed(get.clone()))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let restored = owner.restore_contact(&ada.id).await;
    assert_eq!(restored.tags, ["lead", "VIP"]);

    // Page sizes out of range are refused.
    let page = client
        .list_contacts(owner.authed(ListContactsRequest {
            page_size: 1000,
            ..Default::default()
        }))
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
    let (owner, agent) = owner_and_agent(&platform, &tenant).await;
    let mut client = owner.contacts.clone();
    owner.create_contact_field(plan_field()).await;

    // Import: valid rows applied, the bad one reported; the report can be fetched again.
    let csv = "email,first_name,plan,tags\n\
        ada@example.com,Ada,pro,vip\n\
        grace@navy.mil,Grace,free,navy\n\
        alan@example.org,Alan,gold,\n";
    let import = owner.import_contacts(import_request(csv)).await;
    assert_eq!(
        (import.rows, import.created, import.updated, import.failed),
        (3, 2, 0, 1)
    );
    let report = String::from_utf8(import.error_report.clone()).unwrap();
    assert!(report.starts_with("row,column,reason\n4,plan,"), "{report}");
    let fetched = owner.get_import(&import.id).await;
    assert_eq!(fetched.error_report, import.error_report);
    let denied = client
        .import_contacts(agent.authed(import_request(csv)))
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
    let page = agent
        .search_contacts(search(plan_is("pro"), String::new()))
        .await;
    assert_eq!(page.total_count, 1);
    assert_eq!(page.contacts[0].first_name, "Ada");
    assert_eq!(page.contacts[0].tags, ["vip"]);
    let everyone = agent
        .search_contacts(search(Filter::default(), String::new()))
        .await;
    assert_eq!(everyone.total_count, 2);
    let second = agent
        .search_contacts(search(Filter::default(), everyone.next_page_token.clone()))
        .await;
    assert_ne!(second.contacts[0].id, everyone.contacts[0].id);
    assert!(second.next_page_token.is_empty());

    // A malformed filter or page size changes nothing and names the field.
    let mut unknown_operator = plan_is("pro");
    if let Some(condition::Kind::Field(f)) = &mut unknown_operator.groups[0].conditions[0].kind {
        f.operator = 99;
    }
    let bad = client
        .search_contacts(agent.authed(search(unknown_operator, String::new())))
        .await
        .unwrap_err();
    assert_eq!(
        violated_field(&bad),
        "filter.groups[0].conditions[0].field.operator"
    );
    let mut name_contains_nul = plan_is("ad\0a");
    if let Some(condition::Kind::Field(f)) = &mut name_contains_nul.groups[0].conditions[0].kind {
        f.field = "first_name".into();
        f.operator = FieldOperator::Contains as i32;
    }
    let text_with_nul = Filter {
        text: "ad\0a".into(),
        ..Filter::default()
    };
    for (nul, field) in [
        (
            name_contains_nul,
            "filter.groups[0].conditions[0].field.values[0].text",
        ),
        (text_with_nul, "filter.text"),
    ] {
        let bad = client
            .search_contacts(agent.authed(search(nul, String::new())))
            .await
            .unwrap_err();
        assert_eq!(violated_field(&bad), field);
    }
    let mut big = search(Filter::default(), String::new());
    big.page_size = 101;
    let bad = client.search_contacts(agent.authed(big)).await.unwrap_err();
    assert_eq!(violated_field(&bad), "page_size");

    // Text Postgres cannot hold is INVALID_ARGUMENT naming the field wherever it is
    // stored, even where no field check of the service looks at it.
    let nul = client
        .create_segment(agent.authed(CreateSegmentRequest {
            name: "Pr\0s".into(),
            filter: Some(plan_is("pro")),
        }))
        .await
        .unwrap_err();
    assert_eq!(violated_field(&nul), "name");

    // Segments are saved filters; the stream yields every match in batches.
    let segment = agent.create_segment("Pros", plan_is("pro")).await;
    let streamed: Vec<String> = agent
        .stream_contacts(StreamContactsRequest {
            audience: Some(stream_contacts_request::Audience::SegmentId(
                segment.id.clone(),
            )),
            ..Default::default()
        })
        .await
        .into_iter()
        .flatten()
        .map(|c| c.first_name)
        .collect();
    assert_eq!(streamed, ["Ada"]);
    // One Contact a batch: the second batch's Tag, first met there, is named too.
    let batches: Vec<Vec<_>> = agent
        .stream_contacts(StreamContactsRequest {
            batch_size: 1,
            ..Default::default()
        })
        .await
        .into_iter()
        .map(|batch| batch.into_iter().map(|c| (c.first_name, c.tags)).collect())
        .collect();
    assert_eq!(
        batches,
        [
            [("Ada".to_owned(), vec!["vip".to_owned()])],
            [("Grace".to_owned(), vec!["navy".to_owned()])]
        ]
    );

    // Export: a header with the custom keys, then one line per Contact.
    let csv_out = agent
        .export_contacts(ExportContactsRequest::default())
        .await;
    let csv_out = String::from_utf8(csv_out).unwrap();
    let lines: Vec<&str> = csv_out.lines().collect();
    assert!(lines[0].starts_with("id,first_name,") && lines[0].ends_with(",tags,plan"));
    assert_eq!(lines.len(), 3);

    // Duplicates are suggested; a merge is the caller's choice.
    let twin = agent
        .create_contact(ContactProfile {
            first_name: "Augusta".into(),
            email: "ADA@example.com".into(),
            ..Default::default()
        })
        .await;
    let groups = agent.list_duplicates().await;
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
        .merge_contacts(agent.authed(merge.clone()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let stale = client
        .merge_contacts(owner.authed(MergeContactsRequest {
            target_version: 7,
            ..merge.clone()
        }))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let merged = owner.merge_contacts(merge).await;
    assert_eq!(
        (merged.first_name.as_str(), merged.tags.clone()),
        ("Augusta", vec!["vip".to_owned()])
    );
    let gone = client
        .get_contact(agent.authed(GetContactRequest { id: twin.id }))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);

    // A Segment whose field was deleted since no longer runs.
    owner.delete_contact_field("plan").await;
    let stale_segment = client
        .search_contacts(agent.authed(SearchContactsRequest {
            audience: Some(search_contacts_request::Audience::SegmentId(segment.id)),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(stale_segment.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn exported_cells_never_run_as_formulas_and_import_back_unchanged() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let owner = platform.api(&tenant).await;
    owner.create_contact_field(plan_field()).await;
    let formula = r#"=HYPERLINK("http://evil.example","click")"#;
    let ada = owner
        .create_contact(ContactProfile {
            first_name: formula.into(),
            last_name: "@SUM(A1:A9)".into(),
            email: "ada@example.com".into(),
            phone: "+4915112345678".into(),
            ..Default::default()
        })
        .await;

    let exported = owner
        .export_contacts(ExportContactsRequest::default())
        .await;
    let exported = String::from_utf8(exported).unwrap();
    let line = exported.lines().nth(1).expect("Ada's line");
    assert!(
        line.contains(r#""'=HYPERLINK(""http://evil.example"",""click"")""#),
        "{line}"
    );
    assert!(line.contains(",'@SUM(A1:A9),"), "{line}");
    assert!(
        line.contains(",+4915112345678,"),
        "a phone number stays as it is: {line}"
    );

    // The exported file imported again changes nothing: the quote comes off.
    let import = owner.import_contacts(import_request(&exported)).await;
    assert_eq!((import.updated, import.failed), (1, 0), "{import:?}");
    let again = owner.get_contact(&ada.id).await;
    assert_eq!(again.first_name, formula);
}
