//! Conversations through the real binary: lifecycle timers that survive a restart with
//! the clock moved forward, assignment against the workspaces service's Users and Teams,
//! closing notes, comments, custom inboxes over the real contacts service, a burst of
//! inbound events stored once, and the bad inputs that change nothing.
use std::time::Duration;

use ism_e2e::{Api, Platform, Receiver, Tenant, eventually};
use ism_proto::contacts::v1 as ct;
use ism_proto::conversations::v1 as conv;
use ism_proto::types::v1::{MessageContent, Text, message_content::Kind};
use ism_proto::workspaces::v1 as ws;
use serde_json::json;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(30);

fn text(body: &str) -> Option<MessageContent> {
    Some(MessageContent {
        kind: Some(Kind::Text(Text {
            body: body.to_owned(),
        })),
        ..Default::default()
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(timestamp(seconds))
}

/// The field a rich error names.
fn field(status: &Status) -> String {
    let details = status.get_error_details();
    if let Some(bad) = details.bad_request() {
        return bad.field_violations[0].field.clone();
    }
    details
        .precondition_failure()
        .map(|p| p.violations[0].subject.clone())
        .unwrap_or_default()
}

/// A platform serving one tenant, and a client acting as its owner.
struct Desk {
    receiver: Receiver,
    platform: Platform,
    tenant: Tenant,
    api: Api,
}

impl Desk {
    async fn start() -> Self {
        let receiver = Receiver::start().await;
        let (platform, tenant) = Platform::start(&receiver.url).await;
        let api = platform.api(&tenant).await;
        Self {
            receiver,
            platform,
            tenant,
            api,
        }
    }

    /// Another Workspace on the same platform.
    fn another_workspace(&self) -> Tenant {
        self.platform.bootstrap(&self.receiver.url)
    }

    /// The same connections, acting as `tenant`'s owner.
    async fn api_of(&self, tenant: &Tenant) -> Api {
        self.api.with_token(self.platform.token(tenant).await)
    }

    /// `sender` writes message `id` to the tenant: the conversation it lands in.
    async fn message_from(&self, sender: &str, id: &str) -> conv::Conversation {
        message_from(&self.platform, &self.tenant, &self.api, sender, id).await
    }
}

/// Posts a message from `sender` and returns the conversation it lands in.
async fn message_from(
    platform: &Platform,
    tenant: &Tenant,
    api: &Api,
    sender: &str,
    id: &str,
) -> conv::Conversation {
    let body = serde_json::to_vec(&json!({"message_id": id, "from": {"id": sender}, "text": "hi"}))
        .unwrap();
    let (code, _) = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
        .await;
    assert_eq!(code, 200);
    eventually(WAIT, "the message's conversation", move || async move {
        let mut client = api.conversations.clone();
        let list = client
            .list_conversations(api.authed(conv::ListConversationsRequest::default()))
            .await
            .ok()?
            .into_inner();
        for c in list.conversations {
            let request = conv::ListMessagesRequest {
                conversation_id: c.id.clone(),
                ..Default::default()
            };
            let messages = client
                .list_messages(api.authed(request))
                .await
                .ok()?
                .into_inner()
                .messages;
            if messages.iter().any(|m| m.external_message_id == id) {
                return Some(c);
            }
        }
        None
    })
    .await
}

/// A reply of `body` to the conversation.
fn reply(conversation_id: &str, body: &str) -> conv::SendMessageRequest {
    conv::SendMessageRequest {
        conversation_id: conversation_id.into(),
        content: text(body),
        client_message_id: String::new(),
        snippet_id: String::new(),
    }
}

#[tokio::test]
async fn snooze_wake_up_and_auto_close_fire_after_a_restart_with_the_clock_moved_forward() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_CONVERSATIONS__TIMER_POLL_MS", "200");
    let tenant = platform.bootstrap(&receiver.url);
    let first = platform.spawn("all");
    platform.wait_ready().await;
    let api = platform.api(&tenant).await;

    let answered = message_from(&platform, &tenant, &api, "c1", "m-1").await;
    assert_eq!(answered.opened_by, conv::Party::Contact as i32);
    api.send_message(reply(&answered.id, "we are on it")).await;
    let snoozed = message_from(&platform, &tenant, &api, "c2", "m-2").await;
    let past = api
        .conversations
        .clone()
        .snooze_conversation(api.authed(conv::SnoozeConversationRequest {
            id: snoozed.id.clone(),
            until: at(unix_now() - 60),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (past.code(), field(&past).as_str()),
        (Code::InvalidArgument, "until")
    );
    let two_hours = unix_now() + 2 * 3600;
    let reply = api
        .snooze_conversation(&snoozed.id, timestamp(two_hours))
        .await;
    assert_eq!(reply.status, conv::ConversationStatus::Snoozed as i32);
    assert_eq!(reply.snoozed_until.unwrap().seconds, two_hours);

    // A day and an hour later, in a new process: the timers were durable.
    platform.kill(first);
    platform.set(
        "ISM_CONVERSATIONS__CLOCK_OFFSET_SECONDS",
        &(25 * 3600).to_string(),
    );
    platform.spawn("all");
    platform.wait_ready().await;
    let api = Api::connect(&platform, api.token.clone()).await;
    let closed = eventually(WAIT, "the auto-close", || async {
        let c = api.get_conversation(&answered.id).await;
        (c.status == conv::ConversationStatus::Closed as i32).then_some(c)
    })
    .await;
    assert!(closed.closed_at.unwrap().seconds >= unix_now() + 24 * 3600);
    assert_eq!(closed.metrics.unwrap().response_count, 1);
    let woken = api.get_conversation(&snoozed.id).await;
    assert_eq!(
        woken.status,
        conv::ConversationStatus::Open as i32,
        "woken, and not auto-closed: no User replied there"
    );
    assert_eq!(woken.snoozed_until, None);

    let again = message_from(&platform, &tenant, &api, "c1", "m-3").await;
    assert_ne!(
        again.id, answered.id,
        "a message after closing opens a new conversation"
    );
    assert_eq!(again.contact_id, answered.contact_id);
}

struct Team {
    id: String,
    online: String,
    offline: String,
}

/// A Team "Support" of two agents: one online, one offline.
async fn team_of_two(api: &Api) -> Team {
    let mut users = Vec::new();
    for (name, availability) in [
        ("on", ws::Availability::Online),
        ("off", ws::Availability::Offline),
    ] {
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        let user = api.create_user(&email, name, ws::Role::Agent).await;
        api.set_user_availability(&user.id, availability).await;
        users.push(user.id);
    }
    let team = api.create_team("Support").await;
    for user_id in &users {
        api.add_team_member(&team.id, user_id).await;
    }
    Team {
        id: team.id,
        online: users[0].clone(),
        offline: users[1].clone(),
    }
}

#[tokio::test]
async fn assignment_respects_teams_availability_the_cap_and_hands_out_the_backlog() {
    let desk = Desk::start().await;
    let other = desk.another_workspace();
    let api = &desk.api;
    let team = team_of_two(api).await;
    let mut client = api.conversations.clone();
    let first = desk.message_from("c1", "a-1").await;
    let second = desk.message_from("c2", "a-2").await;

    let stranger = client
        .assign_conversation(api.authed(conv::AssignConversationRequest {
            id: first.id.clone(),
            user_id: other.owner_user_id.clone(),
            team_id: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (stranger.code(), field(&stranger).as_str()),
        (Code::InvalidArgument, "user_id")
    );
    let unknown_team = client
        .assign_conversation(api.authed(conv::AssignConversationRequest {
            id: first.id.clone(),
            user_id: String::new(),
            team_id: uuid::Uuid::new_v4().to_string(),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (unknown_team.code(), field(&unknown_team).as_str()),
        (Code::InvalidArgument, "team_id")
    );
    assert_eq!(
        api.get_conversation(&first.id).await.assignee_user_id,
        "",
        "nothing changed"
    );

    let rules = conv::AssignmentRules {
        strategy: conv::AssignmentStrategy::LeastOpen as i32,
        team_id: team.id.clone(),
        online_only: true,
        cap: 1,
    };
    let decided = api.assign_next(&first.id, rules.clone()).await;
    assert!(decided.assigned);
    let assigned = decided.conversation.unwrap();
    assert_eq!(
        (
            assigned.assignee_user_id.as_str(),
            assigned.assignee_team_id.as_str()
        ),
        (team.online.as_str(), team.id.as_str())
    );
    let full = api.assign_next(&second.id, rules.clone()).await;
    assert!(
        !full.assigned,
        "the online User is at the cap, the other is offline"
    );

    // Auto-assignment: the backlog goes to the User who comes online.
    api.update_conversation_settings(conv::ConversationSettings {
        auto_close_minutes: 1440,
        closing_notes: conv::ClosingNotes::CategoryRequired as i32,
        closing_categories: vec!["Resolved".into(), "Spam".into()],
        reply_to_closed: false,
        auto_assign: Some(rules),
    })
    .await;
    api.set_user_availability(&team.offline, ws::Availability::Online)
        .await;
    eventually(WAIT, "the backlog handed out", || async {
        (api.get_conversation(&second.id).await.assignee_user_id == team.offline).then_some(())
    })
    .await;

    // Closing notes as the Workspace requires them.
    let missing = client
        .close_conversation(api.authed(conv::CloseConversationRequest {
            id: first.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code(), field(&missing).as_str()),
        (Code::InvalidArgument, "closing_category")
    );
    assert_eq!(
        api.get_conversation(&first.id).await.status,
        conv::ConversationStatus::Open as i32
    );
    let closed = api
        .close_conversation(conv::CloseConversationRequest {
            id: first.id.clone(),
            closing_category: "resolved".into(),
            closing_summary: "refund sent".into(),
        })
        .await;
    assert_eq!(
        (
            closed.closing_category.as_str(),
            closed.closing_summary.as_str()
        ),
        ("Resolved", "refund sent")
    );

    let forbidden = client
        .send_message(api.authed(reply(&first.id, "one more thing")))
        .await
        .unwrap_err();
    assert_eq!(
        (forbidden.code(), field(&forbidden).as_str()),
        (Code::FailedPrecondition, "conversation_id")
    );
    let too_long = client
        .send_message(api.authed(reply(&second.id, &"x".repeat(5000))))
        .await
        .unwrap_err();
    assert_eq!(
        (too_long.code(), field(&too_long).as_str()),
        (Code::InvalidArgument, "content.text.body")
    );

    // Internal comments mention Users of the Workspace only and are never delivered.
    let foreign = client
        .add_comment(api.authed(conv::AddCommentRequest {
            conversation_id: second.id.clone(),
            body: "look".into(),
            mentioned_user_ids: vec![other.owner_user_id.clone()],
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (foreign.code(), field(&foreign).as_str()),
        (Code::InvalidArgument, "mentioned_user_ids")
    );
    let comment = api
        .add_comment(conv::AddCommentRequest {
            conversation_id: second.id.clone(),
            body: "@on can you take a look?".into(),
            mentioned_user_ids: vec![team.online.clone()],
        })
        .await;
    assert!(comment.internal);
    assert_eq!(comment.mentioned_user_ids, vec![team.online.clone()]);
    let messages = api.list_messages(&second.id).await;
    assert_eq!(messages.len(), 2, "the inbound message and the comment");
    assert!(messages[0].internal);
    assert!(
        desk.receiver.received().is_empty(),
        "no reply, and the comment was not delivered"
    );

    // The team's built-in view holds the open one of its two conversations.
    let view = api
        .list_inbox_conversations(conv::ListInboxConversationsRequest {
            built_in: conv::BuiltInInbox::Team as i32,
            team_id: team.id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(view.total, 1);
    assert_eq!(view.conversations[0].id, second.id);

    // A bot's reply (the integrations service's token) is not a response.
    let bot_token = api
        .issue_service_token("integrations", "dev-service-secret-change-me")
        .await;
    let mut as_bot = api
        .with_token(bot_token)
        .authed(reply(&second.id, "I am a bot; a person will answer soon"));
    as_bot.metadata_mut().insert(
        "x-ism-workspace-id",
        desk.tenant.workspace_id.parse().unwrap(),
    );
    let bot_message = client
        .send_message(as_bot)
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    assert_eq!(bot_message.sender, conv::Party::Bot as i32);
    let after_bot = api.get_conversation(&second.id).await;
    let metrics = after_bot.metrics.unwrap();
    assert_eq!(
        (metrics.first_response_seconds, metrics.response_count),
        (None, 0)
    );
    assert_eq!(after_bot.last_message_from, conv::Party::Bot as i32);
    assert!(
        after_bot.waiting_since.is_some(),
        "the Contact still waits for a person"
    );

    // Snippets: unknown variables are refused when saved; known ones render when sent.
    let unknown = client
        .create_snippet(api.authed(conv::CreateSnippetRequest {
            shortcut: "size".into(),
            title: "Size".into(),
            body: "Your size is {{ contact.shoe_size }}".into(),
            personal: false,
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (unknown.code(), field(&unknown).as_str()),
        (Code::InvalidArgument, "body")
    );
    let snippet = api
        .create_snippet(conv::CreateSnippetRequest {
            shortcut: "got-it".into(),
            title: "Got it".into(),
            body: "We got your message{{ contact.last_name }}.".into(),
            personal: true,
        })
        .await;
    let sent = api
        .send_message(conv::SendMessageRequest {
            conversation_id: second.id.clone(),
            content: None,
            client_message_id: String::new(),
            snippet_id: snippet.id,
        })
        .await;
    assert_eq!(sent.content, text("We got your message."));
    let answered = api.get_conversation(&second.id).await;
    assert_eq!(answered.metrics.unwrap().response_count, 1);
    assert_eq!(answered.waiting_since, None);
}

#[tokio::test]
async fn merging_two_contacts_moves_the_merged_ones_conversations_to_the_survivor() {
    let desk = Desk::start().await;
    let api = &desk.api;
    let stays = desk.message_from("ada-phone", "m1").await;
    let goes = desk.message_from("ada-laptop", "m2").await;
    assert_ne!(stays.contact_id, goes.contact_id);

    let target = api.get_contact(&stays.contact_id).await;
    api.merge_contacts(ct::MergeContactsRequest {
        target_id: target.id.clone(),
        source_id: goes.contact_id.clone(),
        target_version: target.version,
        ..Default::default()
    })
    .await;

    let moved = eventually(
        WAIT,
        "the merged Contact's conversation to move",
        || async {
            let moved = api.get_conversation(&goes.id).await;
            (moved.contact_id == stays.contact_id).then_some(moved)
        },
    )
    .await;
    assert_eq!(moved.contact_id, stays.contact_id);
    // Both were open on the same channel: the survivor's stays open, the merged one closes.
    assert_eq!(moved.status, conv::ConversationStatus::Closed as i32);
    assert_eq!(
        api.get_conversation(&stays.id).await.status,
        conv::ConversationStatus::Open as i32
    );
}

/// A Contact Filter of one group whose conditions must all hold.
fn all_of(conditions: Vec<ct::condition::Kind>) -> Option<ct::Filter> {
    Some(ct::Filter {
        groups: vec![ct::ConditionGroup {
            conditions: conditions
                .into_iter()
                .map(|kind| ct::Condition { kind: Some(kind) })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn tags(operator: ct::TagOperator, names: &[&str]) -> ct::condition::Kind {
    ct::condition::Kind::Tags(ct::TagCondition {
        operator: operator as i32,
        tags: names.iter().map(|&n| n.to_owned()).collect(),
    })
}

fn field_is(field: &str, value: &str) -> ct::condition::Kind {
    ct::condition::Kind::Field(ct::FieldCondition {
        field: field.into(),
        operator: ct::FieldOperator::Is as i32,
        values: vec![ct::FieldValue {
            kind: Some(ct::field_value::Kind::Text(value.into())),
        }],
    })
}

/// Every page of an inbox (`page_size` 1), with the total each page reported.
async fn every_page(api: &Api, inbox_id: &str) -> (Vec<String>, Vec<i64>) {
    let (mut ids, mut totals, mut page_token) = (Vec::new(), Vec::new(), String::new());
    loop {
        let page = api
            .list_inbox_conversations(conv::ListInboxConversationsRequest {
                inbox_id: inbox_id.into(),
                page_size: 1,
                page_token,
                ..Default::default()
            })
            .await;
        assert!(page.conversations.len() <= 1);
        ids.extend(page.conversations.into_iter().map(|c| c.id));
        totals.push(page.total);
        if page.next_page_token.is_empty() {
            return (ids, totals);
        }
        page_token = page.next_page_token;
    }
}

/// Gives the Contact a first name and a `plan`.
async fn set_profile(api: &Api, contact_id: &str, first_name: &str, plan: &str) {
    let contact = api.get_contact(contact_id).await;
    api.update_contact(ct::UpdateContactRequest {
        id: contact.id,
        version: contact.version,
        first_name: Some(first_name.into()),
        custom_fields: [(
            "plan".to_owned(),
            ct::FieldValue {
                kind: Some(ct::field_value::Kind::Text(plan.into())),
            },
        )]
        .into(),
        ..Default::default()
    })
    .await;
}

/// Six Contacts write to the tenant in turn, so the newest conversation is the most
/// recently active: c1..c4 are tagged VIP; c1..c3 are on the pro plan, c4 on free; c1
/// and c3 are called Ada, c2 Grace, c4 Alan. c1, c2 and c4 are the owner's; c3 is
/// closed. The returned conversations are c1..c6, in that order.
async fn six_customers(desk: &Desk) -> Vec<conv::Conversation> {
    let api = &desk.api;
    api.create_contact_field(ct::ContactField {
        key: "plan".into(),
        label: "Plan".into(),
        r#type: ct::FieldType::Select as i32,
        options: vec!["free".into(), "pro".into()],
        ..Default::default()
    })
    .await;
    let mut c = Vec::new();
    for n in 1..=6 {
        c.push(desk.message_from(&format!("p{n}"), &format!("v-{n}")).await);
    }
    let vips = c[..4].iter().map(|c| c.contact_id.clone()).collect();
    api.add_tags(vips, &["VIP"]).await;
    for (i, plan, first_name) in [
        (0, "pro", "Ada"),
        (1, "pro", "Grace"),
        (2, "pro", "Ada"),
        (3, "free", "Alan"),
    ] {
        set_profile(api, &c[i].contact_id, first_name, plan).await;
    }
    for i in [0, 1, 3] {
        api.assign_conversation(&c[i].id, &desk.tenant.owner_user_id, "")
            .await;
    }
    api.close_conversation(conv::CloseConversationRequest {
        id: c[2].id.clone(),
        ..Default::default()
    })
    .await;
    c
}

#[tokio::test]
async fn custom_inboxes_combine_contact_tags_fields_and_names_with_conversation_conditions() {
    let desk = Desk::start().await;
    let other = desk.another_workspace();
    let (api, other_api) = (&desk.api, desk.api_of(&other).await);
    let mut client = api.conversations.clone();
    let c = six_customers(&desk).await;
    // The other Workspace's Contact is a VIP too, and never shows.
    let stranger = message_from(&desk.platform, &other, &other_api, "p1", "w-1").await;
    other_api
        .add_tags(vec![stranger.contact_id.clone()], &["VIP"])
        .await;

    // Tags and a custom field with status and assignee: the owner's open pro VIPs.
    let pro_vips = api
        .create_inbox(
            "My pro VIPs",
            conv::InboxConditions {
                statuses: vec![conv::ConversationStatus::Open as i32],
                assignee: conv::AssigneeCondition::Users as i32,
                assignee_user_ids: vec![desk.tenant.owner_user_id.clone()],
                contact_filter: all_of(vec![
                    tags(ct::TagOperator::HasAny, &["vip"]),
                    field_is("plan", "pro"),
                ]),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        every_page(api, &pro_vips.id).await,
        (vec![c[1].id.clone(), c[0].id.clone()], vec![2, 2]),
        "newest first, one per page, the same total on each"
    );

    // A name with the unassigned condition and any status: only the closed Ada.
    let unassigned_adas = api
        .create_inbox(
            "Unassigned Adas",
            conv::InboxConditions {
                assignee: conv::AssigneeCondition::Unassigned as i32,
                contact_filter: all_of(vec![field_is("first_name", "ada")]),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        every_page(api, &unassigned_adas.id).await,
        (vec![c[2].id.clone()], vec![1])
    );

    // Open conversations of Contacts without the Tag; a Tag added later takes effect at
    // once.
    let regulars = api
        .create_inbox(
            "Regulars",
            conv::InboxConditions {
                statuses: vec![conv::ConversationStatus::Open as i32],
                contact_filter: all_of(vec![tags(ct::TagOperator::HasNone, &["vip"])]),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        every_page(api, &regulars.id).await,
        (vec![c[5].id.clone(), c[4].id.clone()], vec![2, 2])
    );
    api.add_tags(vec![c[5].contact_id.clone()], &["vip"]).await;
    assert_eq!(
        every_page(api, &regulars.id).await,
        (vec![c[4].id.clone()], vec![1])
    );

    // Every VIP of the Workspace, and none of the other one's.
    let vips = api
        .create_inbox(
            "VIPs",
            conv::InboxConditions {
                contact_filter: all_of(vec![tags(ct::TagOperator::HasAny, &["vip"])]),
                ..Default::default()
            },
        )
        .await;
    let (ids, totals) = every_page(api, &vips.id).await;
    assert_eq!(
        ids,
        [5, 3, 2, 1, 0].map(|i| c[i].id.clone()).to_vec(),
        "c6 (tagged since), c4, c3, c2, c1"
    );
    assert_eq!(totals, vec![5; 5]);
    assert!(!ids.contains(&stranger.id));
    let foreign = api
        .match_contacts(
            all_of(vec![tags(ct::TagOperator::HasAny, &["vip"])]),
            vec![stranger.contact_id.clone(), c[0].contact_id.clone()],
        )
        .await;
    assert_eq!(
        foreign,
        vec![c[0].contact_id.clone()],
        "never the other Workspace's"
    );

    // A Filter contacts refuses is refused when saved, naming the field; nothing changes.
    let unknown_field = conv::InboxConditions {
        contact_filter: all_of(vec![field_is("shoe_size", "42")]),
        ..Default::default()
    };
    let refused = client
        .create_inbox(api.authed(conv::CreateInboxRequest {
            name: "Shoes".into(),
            conditions: Some(unknown_field.clone()),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), field(&refused).as_str()),
        (Code::InvalidArgument, "conditions.contact_filter")
    );
    assert!(refused.message().contains("shoe_size"), "{refused:?}");
    let refused = client
        .update_inbox(api.authed(conv::UpdateInboxRequest {
            id: vips.id.clone(),
            name: "Shoes".into(),
            conditions: Some(unknown_field),
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code(), field(&refused).as_str()),
        (Code::InvalidArgument, "conditions.contact_filter")
    );
    let names: Vec<_> = api
        .list_inboxes()
        .await
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(
        names,
        ["My pro VIPs", "Regulars", "Unassigned Adas", "VIPs"]
    );
}

/// A `gateway.message.received` event of `tenant`'s channel, all on one partition.
fn received_event(tenant: &Tenant, channel_id: &str, id: &str, sender: &str, sent: i64) -> Vec<u8> {
    use ism_proto::events::v1::{Event, MessageReceived, Sender};
    use prost::Message as _;
    let payload = MessageReceived {
        channel_id: channel_id.into(),
        channel_type: ism_proto::types::v1::ChannelType::Custom as i32,
        external_message_id: id.into(),
        sender: Some(Sender {
            external_id: sender.into(),
            display_name: String::new(),
        }),
        content: text(id),
        sent_at: at(sent),
        ..Default::default()
    };
    Event {
        id: uuid::Uuid::now_v7().to_string(),
        r#type: "gateway.message.received".into(),
        workspace_id: tenant.workspace_id.clone(),
        occurred_at: at(sent),
        payload: Some(prost_types::Any::from_msg(&payload).unwrap()),
        partition_key: "burst".into(),
    }
    .encode_to_vec()
}

/// A RabbitMQ channel publishing to the platform's exchange as the gateway would.
struct Broker {
    _connection: lapin::Connection,
    channel: lapin::Channel,
    exchange: String,
}

impl Broker {
    async fn connect(platform: &Platform) -> Self {
        let connection = lapin::Connection::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            lapin::ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        Self {
            _connection: connection,
            channel,
            exchange: platform.exchange(),
        }
    }

    /// Publishes each event as `gateway.message.received`, waiting for every confirm.
    async fn publish(&self, events: Vec<Vec<u8>>) {
        for event in &events {
            self.channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    "gateway.message.received".into(),
                    lapin::options::BasicPublishOptions::default(),
                    event,
                    lapin::BasicProperties::default(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }

    /// The first message of `queue`, once there is one.
    async fn first_of(&self, queue: &str) -> lapin::message::BasicGetMessage {
        eventually(WAIT, "the bad event dead-lettered", || async {
            self.channel
                .basic_get(
                    queue.into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .ok()
                .flatten()
        })
        .await
    }
}

#[tokio::test]
async fn a_burst_of_inbound_events_is_stored_once_in_order_and_a_bad_one_among_them_is_dead_lettered()
 {
    let desk = Desk::start().await;
    let (platform, tenant, api) = (&desk.platform, &desk.tenant, &desk.api);
    // A first message through the webhook: every service is up and trusts the others.
    desk.message_from("w", "warm-up").await;
    let broker = Broker::connect(platform).await;
    // One lane receives each burst at once: 30 messages of 3 senders, one event
    // delivered twice in the first burst, and one whose channel id is not a UUID in the
    // middle of the second.
    let start = unix_now() - 600;
    let mut events: Vec<Vec<u8>> = (0..30)
        .map(|i| {
            let id = format!("burst-{i:02}");
            received_event(
                tenant,
                &tenant.channel_id,
                &id,
                &format!("s{}", i % 3),
                start + i,
            )
        })
        .collect();
    let mut second = events.split_off(20);
    events.insert(10, events[4].clone());
    broker.publish(events).await;
    assert_eq!(platform.stored_external_ids(tenant, 21).await.len(), 21);
    let bad = received_event(tenant, "not-a-channel", "bad", "s0", start);
    second.insert(5, bad.clone());
    broker.publish(second).await;

    let dlq = format!("{}.dlq", platform.queue("conversations.inbound"));
    let dead = broker.first_of(&dlq).await;
    assert_eq!(dead.data, bad);

    let mut ids = platform.stored_external_ids(tenant, 31).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(platform.stored_external_ids(tenant, 31).await.len(), 31);
    ids.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("burst-{i:02}")).collect();
    expected.push("warm-up".into());
    assert_eq!(
        ids, expected,
        "every message once, the repeated event not doubled"
    );

    // One conversation per sender, its messages newest first by the provider's time.
    let conversations = api.list_conversations().await;
    assert_eq!(conversations.len(), 4);
    let mut sizes = Vec::new();
    for c in conversations {
        let ids: Vec<_> = api
            .list_messages(&c.id)
            .await
            .into_iter()
            .map(|m| m.external_message_id)
            .collect();
        let mut newest_first = ids.clone();
        newest_first.sort_by(|a, b| b.cmp(a));
        assert_eq!(ids, newest_first);
        sizes.push(ids.len());
    }
    sizes.sort();
    assert_eq!(
        sizes,
        [1, 10, 10, 10],
        "the warm-up, then one conversation per sender"
    );
    let _ = broker.channel.close(200, "done".into()).await;
}
