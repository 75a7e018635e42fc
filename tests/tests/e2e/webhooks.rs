//! Outgoing event webhooks, as a business's receiving system sees them: every subscribed
//! event once, signed so the Standard Webhooks reference library verifies it, retried
//! through an outage in order, never lost to a crash, and bad endpoints refused.
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use ism_e2e::fixtures::{contact_writes, field_violations};
use ism_e2e::receiver::Received;
use ism_e2e::{Api, Platform, Receiver, eventually};
use ism_proto::contacts::v1 as ct;
use ism_proto::integrations::v1 as ig;
use ism_proto::workflows::v1 as wf;
use serde_json::Value;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

fn endpoint(url: &str, event_types: &[&str]) -> ig::WebhookEndpointDefinition {
    ig::WebhookEndpointDefinition {
        url: url.into(),
        description: "our CRM".into(),
        event_types: event_types.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    }
}

/// The body of a POST, as JSON.
fn body(received: &Received) -> Value {
    serde_json::from_slice(&received.body).expect("a JSON body")
}

fn header<'a>(received: &'a Received, name: &str) -> &'a str {
    received
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Whether the Standard Webhooks reference library accepts the POST with `secret`.
fn verifies(received: &Received, secret: &str) -> bool {
    standardwebhooks::Webhook::new(secret)
        .expect("a whsec_ secret")
        .verify(&received.body, &received.headers)
        .is_ok()
}

/// The POSTs `receiver` got of `event_type`.
fn of_type(receiver: &Receiver, event_type: &str) -> Vec<Received> {
    receiver
        .received()
        .into_iter()
        .filter(|r| body(r)["type"] == event_type)
        .collect()
}

#[tokio::test]
async fn subscribed_events_arrive_once_each_signed_filtered_and_logged() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let offered: Vec<String> = api
        .list_webhook_event_types()
        .await
        .into_iter()
        .map(|t| t.name)
        .collect();
    let wanted = [
        "contacts.contact.created",
        "conversations.conversation.opened",
        "conversations.message.created",
        "contacts.tag.added",
        "conversations.conversation.closed",
    ];
    for t in wanted {
        assert!(offered.contains(&t.to_owned()), "{t} offered");
    }

    let crm = Receiver::start().await;
    let (crm_endpoint, secret) = api
        .create_webhook_endpoint(endpoint(&crm.url, &wanted))
        .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    // Filters: another Channel's messages only; the "vip" Tag only.
    let elsewhere = Receiver::start().await;
    let mut other_channel = endpoint(&elsewhere.url, &["conversations.message.created"]);
    other_channel.channel_ids = vec![uuid::Uuid::new_v4().to_string()];
    api.create_webhook_endpoint(other_channel).await;
    let vips = Receiver::start().await;
    let mut vip_tags = endpoint(&vips.url, &["contacts.tag.added"]);
    vip_tags.tags = vec!["vip".into()];
    let (_, vip_secret) = api.create_webhook_endpoint(vip_tags).await;

    contact_writes(&platform, &tenant, "ada", "in-1", "hello there").await;
    let conversation = api.wait_for_conversation(WAIT, |_| true).await;
    api.add_tags(
        vec![conversation.contact_id.clone()],
        &["vip", "newsletter"],
    )
    .await;
    api.close_conversation(ism_proto::conversations::v1::CloseConversationRequest {
        id: conversation.id.clone(),
        ..Default::default()
    })
    .await;

    // Two Tags added: five types, six events.
    let all = eventually(WAIT, "every subscribed event", || async {
        let all = crm.received();
        (all.len() >= 6).then_some(all)
    })
    .await;
    drop(all);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = crm.received();
    assert_eq!(
        all.len(),
        6,
        "each event once: {:?}",
        all.iter().map(body).collect::<Vec<_>>()
    );
    let ids: HashSet<&str> = all.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(ids.len(), 6, "one webhook-id per event");
    // Each delivery carries its trace, so a receiver that traces continues it.
    let traces: HashSet<&str> = all.iter().map(|r| header(r, "traceparent")).collect();
    assert!(
        traces.iter().all(|t| t.len() == 55 && t.starts_with("00-")),
        "{traces:?}"
    );
    for received in &all {
        assert!(
            verifies(received, &secret),
            "signature of {}",
            body(received)
        );
        assert_eq!(header(received, "content-type"), "application/json");
        assert_eq!(body(received)["workspace_id"], tenant.workspace_id);
    }
    let message = &of_type(&crm, "conversations.message.created")[0];
    assert_eq!(
        body(message)["data"]["content"]["text"]["body"],
        "hello there"
    );
    assert_eq!(body(message)["data"]["channel_id"], tenant.channel_id);
    let mut tags: Vec<String> = of_type(&crm, "contacts.tag.added")
        .iter()
        .map(|r| {
            body(r)["data"]["tag"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    tags.sort();
    assert_eq!(tags, ["newsletter", "vip"]);
    assert_eq!(
        body(&of_type(&crm, "conversations.conversation.closed")[0])["data"]["conversation_id"],
        conversation.id
    );

    assert!(elsewhere.received().is_empty(), "another Channel's filter");
    let vip_posts = vips.received();
    assert_eq!(vip_posts.len(), 1);
    assert_eq!(body(&vip_posts[0])["data"]["tag"], "vip");
    assert!(verifies(&vip_posts[0], &vip_secret));
    assert!(
        !verifies(&vip_posts[0], &secret),
        "each endpoint its own secret"
    );

    // The log: every delivery delivered at its first attempt, answered 200.
    let deliveries = api.list_webhook_deliveries(&crm_endpoint.id).await;
    assert_eq!(deliveries.len(), 6);
    for d in &deliveries {
        assert_eq!(d.state(), ig::WebhookDeliveryState::Delivered, "{d:?}");
        assert!(
            ids.contains(d.event_id.as_str()),
            "the event id is the webhook-id"
        );
        assert_eq!(d.last_attempt.as_ref().map(|a| a.status_code), Some(200));
        assert_eq!(api.list_webhook_attempts(&d.id).await.len(), 1);
    }
    let health = api
        .get_webhook_endpoint(&crm_endpoint.id)
        .await
        .health
        .unwrap_or_default();
    assert!(health.last_success_time.is_some() && health.failing_since.is_none());

    // A test call shows the answer; a resend repeats a delivery with the same webhook-id.
    crm.script(&[(202, "noted")]);
    let test = api.test_webhook_endpoint(&crm_endpoint.id).await;
    assert_eq!(
        (test.status_code, test.response_body.as_str()),
        (202, "noted")
    );
    let tested = of_type(&crm, "integrations.endpoint.test");
    assert_eq!(tested.len(), 1);
    assert_eq!(
        body(&tested[0])["data_type"],
        "ism.events.v1.WebhookEndpointTest"
    );
    assert!(verifies(&tested[0], &secret));
    let again = &deliveries[0];
    api.resend_webhook_delivery(&again.id).await;
    eventually(WAIT, "the resent delivery", || async {
        let same: Vec<_> = crm
            .received()
            .into_iter()
            .filter(|r| header(r, "webhook-id") == again.event_id)
            .collect();
        (same.len() == 2).then_some(())
    })
    .await;

    // A rotated secret: both sign during the overlap.
    let rotated = api.rotate_webhook_secret(&crm_endpoint.id, 3600).await;
    let grace = api
        .create_contact(ct::ContactProfile {
            first_name: "Grace".into(),
            ..Default::default()
        })
        .await;
    let created = eventually(WAIT, "the event after the rotation", || async {
        of_type(&crm, "contacts.contact.created")
            .into_iter()
            .find(|r| body(r)["data"]["contact_id"] == grace.id)
    })
    .await;
    assert!(verifies(&created, &rotated), "the new secret");
    assert!(
        verifies(&created, &secret),
        "the old secret during the overlap"
    );
    assert_eq!(header(&created, "webhook-signature").split(' ').count(), 2);
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_every_event_once_in_order_and_410_disables() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let crm = Receiver::start().await;
    // Down for six attempts: past the breaker (five failures), within the retries; the
    // last answer a redirect, which is a failed attempt and never followed.
    let mut down = vec![(503, "down"); 5];
    down.push((302, "moved"));
    crm.script(&down);
    let mut ordered = endpoint(
        &crm.url,
        &["contacts.contact.created", "integrations.endpoint.disabled"],
    );
    ordered.ordered = true;
    let (crm_endpoint, _) = api.create_webhook_endpoint(ordered).await;
    // One at a time too, so the 410 comes before anything else is attempted.
    let gone = Receiver::start().await;
    gone.script(&[(410, "we moved")]);
    let mut one_by_one = endpoint(&gone.url, &["contacts.contact.created"]);
    one_by_one.ordered = true;
    let (gone_endpoint, _) = api.create_webhook_endpoint(one_by_one).await;

    let mut names = Vec::new();
    for i in 0..5 {
        let contact = api
            .create_contact(ct::ContactProfile {
                first_name: format!("Contact {i}"),
                ..Default::default()
            })
            .await;
        names.push(contact.id);
    }

    let delivered = eventually(WAIT, "every event after the outage", || async {
        let answered: Vec<String> = api
            .list_webhook_deliveries(&crm_endpoint.id)
            .await
            .into_iter()
            .filter(|d| {
                d.state() == ig::WebhookDeliveryState::Delivered
                    && d.event_type == "contacts.contact.created"
            })
            .map(|d| d.event_id)
            .collect();
        (answered.len() >= 5).then(|| of_type(&crm, "contacts.contact.created"))
    })
    .await;
    // Each event reached the receiver in creation order, the first one repeatedly (503s
    // and a 302),
    // never one before the one ahead of it was answered 200.
    let mut order: Vec<String> = Vec::new();
    for r in &delivered {
        let name = body(r)["data"]["contact_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if order.last() != Some(&name) {
            order.push(name);
        }
    }
    assert_eq!(order, names, "in order, each name once after its retries");
    let attempts: usize = delivered.len();
    assert_eq!(
        attempts,
        5 + 6,
        "five events, six refused attempts of the first"
    );
    let log = api.list_webhook_deliveries(&crm_endpoint.id).await;
    // Found by the first event's id: deliveries made in one batch share a create time.
    let first_event = header(&delivered[0], "webhook-id");
    let first = log
        .iter()
        .find(|d| d.event_id == first_event)
        .expect("the first event's delivery");
    let tries = api.list_webhook_attempts(&first.id).await;
    assert_eq!(
        tries.iter().map(|a| a.status_code).collect::<Vec<_>>(),
        [503, 503, 503, 503, 503, 302, 200]
    );
    assert!(
        tries[5].error.contains("redirects are not followed"),
        "{}",
        tries[5].error
    );

    // 410 disabled the other endpoint, with the reason and an event.
    let disabled = api.get_webhook_endpoint(&gone_endpoint.id).await;
    assert_eq!(disabled.state(), ig::WebhookEndpointState::Disabled);
    assert!(
        disabled.disabled_reason.contains("410"),
        "{}",
        disabled.disabled_reason
    );
    let told = eventually(WAIT, "integrations.endpoint.disabled", || async {
        of_type(&crm, "integrations.endpoint.disabled").pop()
    })
    .await;
    assert_eq!(body(&told)["data"]["endpoint_id"], gone_endpoint.id);
    assert_eq!(gone.received().len(), 1, "nothing after 410");
    let states: BTreeMap<String, usize> = api
        .list_webhook_deliveries(&gone_endpoint.id)
        .await
        .iter()
        .fold(BTreeMap::new(), |mut m, d| {
            *m.entry(format!("{:?}", d.state())).or_default() += 1;
            m
        });
    assert_eq!(states.get("Failed"), Some(&1), "{states:?}");
    assert_eq!(states.get("Skipped"), Some(&4), "{states:?}");

    // While it is disabled, a resend or a recovery is refused saying what to do first.
    let since = prost_types::Timestamp {
        seconds: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
            - 600,
        nanos: 0,
    };
    let skipped = api
        .list_webhook_deliveries(&gone_endpoint.id)
        .await
        .into_iter()
        .find(|d| d.state() == ig::WebhookDeliveryState::Skipped)
        .expect("a skipped delivery");
    let mut client = api.integrations.clone();
    let refused = client
        .resend_webhook_delivery(api.authed(ig::ResendWebhookDeliveryRequest {
            delivery_id: skipped.id.clone(),
        }))
        .await
        .expect_err("a resend to a disabled endpoint");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(refused.message().contains("enable it first"), "{refused:?}");
    let refused = client
        .recover_webhook_endpoint(api.authed(ig::RecoverWebhookEndpointRequest {
            endpoint_id: gone_endpoint.id.clone(),
            since: Some(since),
        }))
        .await
        .expect_err("a recovery of a disabled endpoint");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let states_now = api.list_webhook_deliveries(&gone_endpoint.id).await;
    assert_eq!(
        states_now
            .iter()
            .filter(|d| d.state() == ig::WebhookDeliveryState::Skipped)
            .count(),
        4,
        "nothing changed"
    );

    // Back: enabled and recovered, every event it missed arrives once.
    api.set_webhook_endpoint_enabled(&gone_endpoint.id, true)
        .await;
    assert_eq!(
        api.recover_webhook_endpoint(&gone_endpoint.id, since).await,
        5
    );
    eventually(WAIT, "the recovered deliveries", || async {
        let ok = gone.received().len() - 1;
        (ok >= 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ids: HashSet<String> = gone
        .received()
        .iter()
        .skip(1)
        .map(|r| header(r, "webhook-id").to_owned())
        .collect();
    assert_eq!((gone.received().len(), ids.len()), (6, 5));
}

#[tokio::test]
async fn a_rate_limited_endpoint_is_paced_and_never_slows_another() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    const RATE: u32 = 2;
    const EVENTS: usize = 8;
    let paced = Receiver::start().await;
    let mut limited = endpoint(&paced.url, &["contacts.contact.created"]);
    limited.rate_limit_per_second = RATE;
    api.create_webhook_endpoint(limited).await;
    let free = Receiver::start().await;
    api.create_webhook_endpoint(endpoint(&free.url, &["contacts.contact.created"]))
        .await;

    for i in 0..EVENTS {
        api.create_contact(ct::ContactProfile {
            first_name: format!("Contact {i}"),
            ..Default::default()
        })
        .await;
    }
    let arrivals = |receiver: &Receiver| {
        let got = of_type(receiver, "contacts.contact.created");
        (got.len() >= EVENTS).then(|| got.iter().map(|r| r.at).collect::<Vec<_>>())
    };
    let paced_at = eventually(WAIT, "every event at the paced endpoint", || async {
        arrivals(&paced)
    })
    .await;
    let free_at = eventually(WAIT, "every event at the free endpoint", || async {
        arrivals(&free)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(paced.received().len(), EVENTS, "each event once");
    assert_eq!(free.received().len(), EVENTS, "each event once");

    // A burst of RATE, then RATE a second: the rest take (EVENTS - RATE) / RATE seconds.
    let span = |at: &[std::time::Instant]| at[at.len() - 1] - at[0];
    let least = Duration::from_secs_f64((EVENTS as u32 - RATE) as f64 / f64::from(RATE) * 0.9);
    assert!(
        span(&paced_at) >= least,
        "{EVENTS} POSTs at {RATE}/s took {:?}, at least {least:?} expected",
        span(&paced_at)
    );
    assert!(
        free_at[EVENTS - 1] < paced_at[EVENTS - 1],
        "the endpoint without a limit had every event before the paced one"
    );
}

#[tokio::test]
async fn an_integrations_process_killed_mid_delivery_loses_nothing() {
    let outbound = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_INTEGRATIONS__REQUEST_TIMEOUT_MS", "2000");
    // Longer than a POST can take on a loaded machine, so only the crash repeats one.
    platform.set("ISM_INTEGRATIONS__LEASE_SECONDS", "8");
    let tenant = platform.bootstrap(&outbound.url);
    let integrations = platform.spawn_each()["integrations"];
    platform.wait_ready().await;
    let api = platform.api(&tenant).await;
    let crm = Receiver::start().await;
    let (_, secret) = api
        .create_webhook_endpoint(endpoint(&crm.url, &["contacts.contact.created"]))
        .await;
    let gate = crm.hold_answers();
    for i in 0..20 {
        api.create_contact(ct::ContactProfile {
            first_name: format!("Crash {i}"),
            ..Default::default()
        })
        .await;
    }
    let contact_of = |r: &Received| {
        body(r)["data"]["contact_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    eventually(WAIT, "deliveries in flight", || async {
        (crm.received().len() >= 3).then_some(())
    })
    .await;
    platform.kill(integrations);
    gate.add_permits(10_000);
    platform.spawn("integrations");
    platform.wait_ready().await;

    let received = eventually(WAIT, "every event after the crash", || async {
        let names: HashSet<String> = crm.received().iter().map(contact_of).collect();
        (names.len() == 20).then(|| crm.received())
    })
    .await;
    // Repeats only of what was in flight at the crash, under the same webhook-id.
    let mut id_of: BTreeMap<String, String> = BTreeMap::new();
    for r in &received {
        assert!(verifies(r, &secret));
        let name = contact_of(r);
        let id = header(r, "webhook-id").to_owned();
        assert_eq!(
            id_of.entry(name.clone()).or_insert(id.clone()),
            &id,
            "{name} under one id"
        );
    }
    assert_eq!(id_of.len(), 20);
    // At most the endpoint's concurrency (8) was in flight at the crash.
    assert!(received.len() <= 20 + 8, "{} POSTs", received.len());
}

#[tokio::test]
async fn bad_endpoints_are_refused_naming_each_field_and_nothing_is_saved() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api: Api = platform.api(&tenant).await;
    let mut client = api.integrations.clone();
    let refused = |definition: ig::WebhookEndpointDefinition| {
        let mut client = client.clone();
        let request = api.authed(ig::CreateWebhookEndpointRequest {
            definition: Some(definition),
        });
        async move {
            client
                .create_webhook_endpoint(request)
                .await
                .expect_err("refused")
        }
    };

    // Every internal range, as a literal or a name, and a scheme that is not http(s).
    for url in [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://192.168.1.1:8080/",
        "ftp://example.com/",
        "http://user:pw@example.com/",
    ] {
        let status = refused(endpoint(url, &["contacts.contact.created"])).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{url}: {status:?}");
        assert_eq!(field_violations(&status), ["definition.url"], "{url}");
    }
    let mut many = endpoint(
        "http://127.0.0.1:9/",
        &["contacts.contact.created", "no.such.event"],
    );
    many.tags = vec![String::new()];
    many.channel_ids = vec!["not-a-uuid".into()];
    many.rate_limit_per_second = 1_000_000;
    let status = refused(many).await;
    let mut fields = field_violations(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "definition.channel_ids[0]",
            "definition.event_types[1]",
            "definition.rate_limit_per_second",
            "definition.tags[0]",
        ],
        "{status:?}"
    );
    let status = refused(endpoint("http://127.0.0.1:9/", &[])).await;
    assert_eq!(field_violations(&status), ["definition.event_types"]);

    let listed = client
        .list_webhook_endpoints(api.authed(ig::ListWebhookEndpointsRequest {}))
        .await
        .expect("listed")
        .into_inner()
        .endpoints;
    assert!(listed.is_empty(), "nothing saved: {listed:?}");

    let (saved, _) = api
        .create_webhook_endpoint(endpoint("http://127.0.0.1:9/", &["contacts.tag.added"]))
        .await;
    let status = client
        .rotate_webhook_secret(api.authed(ig::RotateWebhookSecretRequest {
            endpoint_id: saved.id.clone(),
            overlap_seconds: 10_000_000,
        }))
        .await
        .expect_err("too long an overlap");
    assert_eq!(field_violations(&status), ["overlap_seconds"]);
    let status = client
        .recover_webhook_endpoint(api.authed(ig::RecoverWebhookEndpointRequest {
            endpoint_id: saved.id.clone(),
            since: None,
        }))
        .await
        .expect_err("since is required");
    assert_eq!(field_violations(&status), ["since"]);
}

#[tokio::test]
async fn every_event_type_is_delivered_and_verifies_and_sustained_failure_warns_then_disables() {
    use ism_proto::conversations::v1 as cv;
    use ism_proto::workspaces::v1 as ws;
    let outbound = Receiver::start().await;
    // Failing for 2 s warns, for 4 s disables (hours in production).
    let (platform, tenant) = Platform::start_with(
        &outbound.url,
        &[
            ("ISM_INTEGRATIONS__WARN_AFTER_HOURS", "0.0005"),
            ("ISM_INTEGRATIONS__DISABLE_AFTER_HOURS", "0.0011"),
        ],
    )
    .await;
    let api = platform.api(&tenant).await;
    let offered = api.list_webhook_event_types().await;
    let all: Vec<String> = offered.iter().map(|t| t.name.clone()).collect();
    let crm = Receiver::start().await;
    let types: Vec<&str> = all.iter().map(String::as_str).collect();
    let (_, secret) = api
        .create_webhook_endpoint(endpoint(&crm.url, &types))
        .await;
    let down = Receiver::start().await;
    down.script(&[(503, "down"); 200]);
    let (down_endpoint, _) = api
        .create_webhook_endpoint(endpoint(&down.url, &["contacts.contact.created"]))
        .await;

    // Conversations: opened, messages, a status, a comment, assignment, snooze, close.
    contact_writes(&platform, &tenant, "ada", "all-1", "hello").await;
    let conversation = api.wait_for_conversation(WAIT, |_| true).await;
    api.send_message(cv::SendMessageRequest {
        conversation_id: conversation.id.clone(),
        content: Some(ism_e2e::fixtures::text_content("Hi Ada")),
        ..Default::default()
    })
    .await;
    api.add_comment(cv::AddCommentRequest {
        conversation_id: conversation.id.clone(),
        body: "VIP".into(),
        ..Default::default()
    })
    .await;
    api.assign_conversation(&conversation.id, &tenant.owner_user_id, "")
        .await;
    let mut conversations = api.conversations.clone();
    conversations
        .unassign_conversation(api.authed(cv::UnassignConversationRequest {
            id: conversation.id.clone(),
        }))
        .await
        .expect("unassigned");
    let later = prost_types::Timestamp {
        seconds: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
            + 3600,
        nanos: 0,
    };
    api.snooze_conversation(&conversation.id, later).await;
    conversations
        .wake_conversation(api.authed(cv::WakeConversationRequest {
            id: conversation.id.clone(),
        }))
        .await
        .expect("woken");
    api.close_conversation(cv::CloseConversationRequest {
        id: conversation.id.clone(),
        ..Default::default()
    })
    .await;

    // Contacts: fields, Tags, blocking, consent, merge, delete and restore.
    let ada = conversation.contact_id.clone();
    api.create_contact_field(ct::ContactField {
        key: "tier".into(),
        label: "Tier".into(),
        r#type: ct::FieldType::Text as i32,
        ..Default::default()
    })
    .await;
    api.set_lifecycle_stages(&[("customer", "Customer")]).await;
    let version = api.get_contact(&ada).await.version;
    api.update_contact(ct::UpdateContactRequest {
        id: ada.clone(),
        version,
        last_name: Some("Lovelace".into()),
        lifecycle_stage: Some("customer".into()),
        custom_fields: [(
            "tier".to_owned(),
            ct::FieldValue {
                kind: Some(ct::field_value::Kind::Text("gold".into())),
            },
        )]
        .into(),
        ..Default::default()
    })
    .await;
    api.add_tags(vec![ada.clone()], &["vip", "temp"]).await;
    let mut contacts = api.contacts.clone();
    contacts
        .remove_tags(api.authed(ct::RemoveTagsRequest {
            contact_ids: vec![ada.clone()],
            tags: vec!["temp".into()],
        }))
        .await
        .expect("removed");
    contacts
        .rename_tag(api.authed(ct::RenameTagRequest {
            name: "vip".into(),
            new_name: "gold".into(),
        }))
        .await
        .expect("renamed");
    contacts
        .delete_tag(api.authed(ct::DeleteTagRequest {
            name: "gold".into(),
        }))
        .await
        .expect("deleted");
    api.set_contact_blocked(&ada, true).await;
    api.set_contact_blocked(&ada, false).await;
    api.set_broadcast_opt_out(&ada, true).await;
    api.set_broadcast_opt_out(&ada, false).await;
    let twin = api
        .create_contact(ct::ContactProfile {
            first_name: "Ada".into(),
            ..Default::default()
        })
        .await;
    let version = api.get_contact(&ada).await.version;
    api.merge_contacts(ct::MergeContactsRequest {
        target_id: ada.clone(),
        source_id: twin.id,
        target_version: version,
        ..Default::default()
    })
    .await;
    let gone = api
        .create_contact(ct::ContactProfile {
            first_name: "Gone".into(),
            ..Default::default()
        })
        .await;
    api.delete_contact(&gone.id).await;
    api.restore_contact(&gone.id).await;

    // A User's availability and a broadcast's state.
    api.set_user_availability(&tenant.owner_user_id, ws::Availability::Away)
        .await;
    let broadcast = api
        .create_broadcast(ism_proto::broadcasts::v1::BroadcastDefinition {
            name: "All".into(),
            channel_id: tenant.channel_id.clone(),
            audience: Some(ism_proto::broadcasts::v1::Audience {
                source: Some(ism_proto::broadcasts::v1::audience::Source::Filter(
                    ct::Filter::default(),
                )),
                exclude: None,
            }),
            content: Some(ism_e2e::fixtures::text_content("News")),
            labels: vec![],
        })
        .await;
    api.start_broadcast(&broadcast.id).await;

    // Workflow runs: one completes, one fails at its step, one is cancelled while waiting.
    let manual = |name: &str, kind: wf::step::Kind| wf::WorkflowDefinition {
        name: name.into(),
        trigger: Some(wf::Trigger {
            kind: Some(wf::trigger::Kind::Manual(wf::Manual {})),
            conditions: Vec::new(),
        }),
        steps: vec![wf::Step {
            id: "only".into(),
            kind: Some(kind),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut runs = Vec::new();
    for definition in [
        manual(
            "Note",
            wf::step::Kind::Comment(wf::CommentStep {
                body: "Seen".into(),
            }),
        ),
        manual(
            "Assign nobody",
            wf::step::Kind::Assign(wf::AssignStep {
                user_id: uuid::Uuid::new_v4().to_string(),
                team_id: String::new(),
                ..Default::default()
            }),
        ),
        manual(
            "Wait long",
            wf::step::Kind::Wait(wf::WaitStep {
                seconds: 3600,
                ..Default::default()
            }),
        ),
    ] {
        let workflow = api.create_workflow(definition).await;
        api.publish_workflow(&workflow.id).await;
        runs.push(
            api.start_run(&workflow.id, &conversation.id)
                .await
                .expect("a run"),
        );
    }
    api.wait_for_run(&runs[2].id, WAIT, "the long wait", |r| {
        r.state() == wf::RunState::Waiting
    })
    .await;
    api.cancel_run(&runs[2].id).await;

    let seen = eventually(Duration::from_secs(90), "every event type", || async {
        let seen: HashSet<String> = crm
            .received()
            .iter()
            .map(|r| body(r)["type"].as_str().unwrap_or_default().to_owned())
            .collect();
        all.iter().all(|t| seen.contains(t)).then_some(seen)
    })
    .await;
    assert_eq!(seen.len(), all.len(), "{seen:?}");
    for (event_type, run) in [
        ("workflows.run.completed", &runs[0]),
        ("workflows.run.failed", &runs[1]),
        ("workflows.run.cancelled", &runs[2]),
    ] {
        let ended = of_type(&crm, event_type);
        assert_eq!(ended.len(), 1, "{event_type}");
        let data = &body(&ended[0])["data"];
        assert_eq!(data["run_id"], run.id.as_str(), "{event_type}");
        assert_eq!(data["contact_id"], ada.as_str(), "{event_type}");
    }
    assert_eq!(of_type(&crm, "workflows.run.started").len(), 3);
    let failed = body(&of_type(&crm, "workflows.run.failed")[0]);
    assert_eq!(failed["data"]["step_id"], "only");
    assert!(
        failed["data"]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("step \"only\"")),
        "{failed}"
    );
    for received in crm.received() {
        let sent = body(&received);
        assert!(verifies(&received, &secret), "{}", sent["type"]);
        // Each body names its payload's proto message, the one the catalog lists.
        let listed = offered.iter().find(|t| sent["type"] == t.name.as_str());
        assert_eq!(
            sent["data_type"].as_str(),
            listed.map(|t| t.payload.as_str()),
            "{sent}"
        );
    }
    let failing = &of_type(&crm, "integrations.endpoint.failing")[0];
    assert_eq!(body(failing)["data"]["endpoint_id"], down_endpoint.id);
    assert!(
        body(failing)["data"]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("503")
    );
    let disabled = api.get_webhook_endpoint(&down_endpoint.id).await;
    assert_eq!(disabled.state(), ig::WebhookEndpointState::Disabled);
    assert!(
        disabled
            .disabled_reason
            .contains("every attempt failed since"),
        "{}",
        disabled.disabled_reason
    );
}
