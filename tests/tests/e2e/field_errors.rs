//! A request with several bad fields is answered with every violation at once, as one
//! INVALID_ARGUMENT with a `BadRequest` naming each field, by every service; and nothing
//! is created.
use std::collections::{HashMap, HashSet, VecDeque};

use bytes::{Buf, BufMut};
use ism_e2e::{Platform, Receiver, authed};
use ism_platform::config::ServiceName;
use ism_proto::codec::{self, descriptors};
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::contacts::v1::{ContactProfile, CreateContactRequest};
use ism_proto::conversations::v1::CreateSnippetRequest;
use ism_proto::gateway::v1::ConnectChannelRequest;
use ism_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ism_proto::types::v1::ChannelType;
use ism_proto::workspaces::v1::CreateUserRequest;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_reflect::{
    FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, ServiceDescriptor,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The fields an INVALID_ARGUMENT names, in order.
fn violations(result: Result<impl std::fmt::Debug, Status>) -> Vec<String> {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("a BadRequest detail")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[tokio::test]
async fn three_bad_fields_are_three_violations_in_every_service() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let token = platform.token(&tenant).await;
    let platform = &platform;
    let connect = |service| async move { platform.channel(service).connect().await.unwrap() };

    let mut contacts = ContactServiceClient::new(connect("contacts").await);
    let profile = ContactProfile {
        first_name: "Ada".into(),
        email: "ada@".into(),
        language: "portuguese".into(),
        timezone: "Mars/Olympus".into(),
        ..Default::default()
    };
    let refused = contacts
        .create_contact(authed(
            &token,
            CreateContactRequest {
                profile: Some(profile),
            },
        ))
        .await;
    assert_eq!(violations(refused), ["email", "language", "timezone"]);

    let mut workspaces = WorkspaceServiceClient::new(connect("workspaces").await);
    let refused = workspaces
        .create_user(authed(
            &token,
            CreateUserRequest {
                email: "not an email".into(),
                display_name: " ".into(),
                role: 0,
            },
        ))
        .await;
    assert_eq!(violations(refused), ["email", "display_name", "role"]);

    let mut conversations = platform.conversations().await;
    let refused = conversations
        .create_snippet(authed(
            &token,
            CreateSnippetRequest {
                shortcut: "two words".into(),
                title: String::new(),
                body: "{{ contact.shoe_size }}".into(),
                personal: false,
            },
        ))
        .await;
    assert_eq!(violations(refused), ["shortcut", "title", "body"]);

    let mut gateway = GatewayServiceClient::new(connect("gateway").await);
    let refused = gateway
        .connect_channel(authed(
            &token,
            ConnectChannelRequest {
                r#type: ChannelType::Custom as i32,
                name: String::new(),
                outbound_url: "ftp://example.com".into(),
                api_base_url: "not a url".into(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        violations(refused),
        ["name", "outbound_url", "api_base_url"]
    );
}

/// Requests as raw bytes and answers dropped: what a client whose encoder is broken, or
/// an attacker's, sends.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        buf.advance(buf.remaining());
        Ok(Some(()))
    }
}

/// The port's service name of a gRPC service (`ism.contacts.v1.ContactService`).
fn port_of(service: &ServiceDescriptor) -> &'static str {
    let package = service.package_name();
    ServiceName::ALL
        .into_iter()
        .find(|name| package == format!("ism.{}.v1", name.as_str()))
        .map(ServiceName::as_str)
        .unwrap_or_else(|| panic!("no service serves {package}"))
}

/// Calls `method` with `body` as its request, as its kind of call.
async fn call_raw(
    channel: Channel,
    token: &str,
    method: &MethodDescriptor,
    body: Vec<u8>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let path = PathAndQuery::try_from(path).expect("a method path");
    if method.is_client_streaming() {
        let request = authed(token, futures::stream::iter([body]));
        grpc.client_streaming(request, path, Raw).await.map(drop)
    } else if method.is_server_streaming() {
        let mut answers = grpc
            .server_streaming(authed(token, body), path, Raw)
            .await?
            .into_inner();
        answers.message().await.map(drop)
    } else {
        grpc.unary(authed(token, body), path, Raw).await.map(drop)
    }
}

/// A string field of `message` reachable through singular and repeated message fields
/// (not maps), nearest first: the fields leading to it and its path as a refusal names
/// it (`content.location.name`, `rows[0].phone`).
fn string_field(message: &MessageDescriptor) -> Option<(Vec<FieldDescriptor>, String)> {
    let mut queue = VecDeque::from([(message.clone(), Vec::<FieldDescriptor>::new())]);
    let mut seen = HashSet::from([message.full_name().to_owned()]);
    while let Some((message, route)) = queue.pop_front() {
        for field in message.fields().filter(|f| !f.is_map()) {
            let mut next = route.clone();
            next.push(field.clone());
            match field.kind() {
                Kind::String => {
                    let path = next
                        .iter()
                        .map(|f| match f.is_list() {
                            true => format!("{}[0]", f.name()),
                            false => f.name().to_owned(),
                        })
                        .collect::<Vec<_>>()
                        .join(".");
                    return Some((next, path));
                }
                Kind::Message(inner) if seen.insert(inner.full_name().to_owned()) => {
                    queue.push_back((inner, next));
                }
                _ => {}
            }
        }
    }
    None
}

/// A request holding `value` (raw, perhaps not UTF-8) at the end of `route`.
fn nested(route: &[FieldDescriptor], value: &[u8]) -> Vec<u8> {
    route.iter().rev().fold(value.to_vec(), |inner, field| {
        let mut outer = Vec::new();
        encode_key(field.number(), WireType::LengthDelimited, &mut outer);
        encode_varint(inner.len() as u64, &mut outer);
        outer.extend(inner);
        outer
    })
}

#[tokio::test]
async fn every_rpc_refuses_undecodable_and_oversized_requests_naming_the_field() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let token = platform.token(&tenant).await;
    let mut channels = HashMap::new();
    let mut methods = 0;
    for service in descriptors().services() {
        let port = port_of(&service);
        if !channels.contains_key(port) {
            let channel = platform.channel(port).connect().await.expect("reachable");
            channels.insert(port, channel);
        }
        for method in service.methods() {
            methods += 1;
            let rpc = method.full_name();
            let call = |body| call_raw(channels[port].clone(), &token, &method, body);

            // Field 1 as a varint cut short: the request ends inside it.
            let expected = match method.input().get_field(1) {
                Some(field) if field.is_list() => format!("{}[0]", field.name()),
                Some(field) => field.name().to_owned(),
                None => "request".to_owned(),
            };
            let refused = call(vec![0x08, 0x80]).await;
            assert_eq!(violations(refused), [expected], "{rpc}: a truncated varint");

            let Some((route, path)) = string_field(&method.input()) else {
                continue;
            };
            let limit = codec::limits(route.last().expect("a string field")).max_chars;
            let oversized = "é".repeat(limit as usize + 1);
            for (case, value) in [
                ("invalid UTF-8", b"caf\xC3(".to_vec()),
                ("an oversized string", oversized.into_bytes()),
                ("NUL", b"ab\0cd".to_vec()),
            ] {
                let mut body = Vec::new();
                encode_key(
                    route[route.len() - 1].number(),
                    WireType::LengthDelimited,
                    &mut body,
                );
                encode_varint(value.len() as u64, &mut body);
                body.extend(value);
                let body = nested(&route[..route.len() - 1], &body);
                let refused = call(body).await;
                assert_eq!(
                    violations(refused),
                    std::slice::from_ref(&path),
                    "{rpc}: {case} at {path}"
                );
            }
        }
    }
    assert!(
        methods > 100,
        "every service's methods were called ({methods})"
    );
}

/// The fields of a refusal and its message, checking the message stays small.
fn named(result: Result<impl std::fmt::Debug, Status>) -> Vec<String> {
    let status = result.as_ref().expect_err("refused");
    assert!(
        status.message().len() < 1000,
        "a refusal quotes no value: {} bytes",
        status.message().len()
    );
    violations(result)
}

#[tokio::test]
async fn each_reported_bad_input_is_refused_naming_its_field() {
    use ism_proto::contacts::v1::{MatchContactsRequest, ResolveContactRequest};
    use ism_proto::conversations::v1::{
        AddCommentRequest, CreateInboxRequest, InboxConditions, SendMessageRequest,
        SnoozeConversationRequest,
    };
    use ism_proto::types::v1::message_content::Kind as Content;
    use ism_proto::types::v1::{ContactCard, Location, MessageContent, Template, Text};

    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let api = platform.api(&tenant).await;
    let token = api.token.clone();
    let megabyte = "x".repeat(1 << 20);
    let some_id = uuid::Uuid::now_v7().to_string();

    let send = |content: Content| {
        let mut conversations = api.conversations.clone();
        let request = SendMessageRequest {
            conversation_id: some_id.clone(),
            content: Some(MessageContent {
                kind: Some(content),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = token.clone();
        async move { named(conversations.send_message(authed(&token, request)).await) }
    };
    let location = |name: &str, address: &str| {
        Content::Location(Location {
            name: name.into(),
            address: address.into(),
            ..Default::default()
        })
    };
    assert_eq!(
        send(location(&megabyte, "")).await,
        ["content.location.name"]
    );
    assert_eq!(
        send(location("", &megabyte)).await,
        ["content.location.address"]
    );
    let text = Content::Text(Text {
        body: "hi\0there".into(),
    });
    assert_eq!(send(text).await, ["content.text.body"]);
    let card = Content::Contact(ContactCard {
        name: "Ada\0".into(),
        phones: vec!["+4915112345678".into(), "+49\0".into()],
        ..Default::default()
    });
    assert_eq!(
        send(card).await,
        ["content.contact.name", "content.contact.phones[1]"]
    );
    let template = Content::Template(Template {
        name: "welcome\0".into(),
        variables: vec!["\0".into()],
        ..Default::default()
    });
    assert_eq!(
        send(template).await,
        ["content.template.name", "content.template.variables[0]"]
    );

    let mut contacts = api.contacts.clone();
    let resolve = ResolveContactRequest {
        channel_id: some_id.clone(),
        external_id: "42".into(),
        display_name: megabyte.clone(),
    };
    assert_eq!(
        named(contacts.resolve_contact(authed(&token, resolve)).await),
        ["display_name"]
    );
    let too_many: Vec<String> = (0..10_001).map(|_| some_id.clone()).collect();
    let matching = MatchContactsRequest {
        filter: None,
        contact_ids: too_many.clone(),
    };
    assert_eq!(
        named(contacts.match_contacts(authed(&token, matching)).await),
        ["contact_ids"]
    );
    // The option raises MatchContacts' limit to the service's own 10,000.
    let matching = MatchContactsRequest {
        filter: None,
        contact_ids: too_many[..10_000].to_vec(),
    };
    contacts
        .match_contacts(authed(&token, matching))
        .await
        .expect("10,000 candidates are taken");

    let mut conversations = api.conversations.clone();
    let comment = AddCommentRequest {
        conversation_id: some_id.clone(),
        body: "see\0this".into(),
        ..Default::default()
    };
    assert_eq!(
        named(conversations.add_comment(authed(&token, comment)).await),
        ["body"]
    );
    let snooze = SnoozeConversationRequest {
        id: some_id.clone(),
        until: Some(prost_types::Timestamp {
            seconds: 253_402_300_800,
            nanos: 0,
        }),
    };
    assert_eq!(
        named(
            conversations
                .snooze_conversation(authed(&token, snooze))
                .await
        ),
        ["until"]
    );
    let inbox = CreateInboxRequest {
        name: "Everyone's".into(),
        conditions: Some(InboxConditions {
            assignee_user_ids: too_many.clone(),
            ..Default::default()
        }),
    };
    assert_eq!(
        named(conversations.create_inbox(authed(&token, inbox)).await),
        ["conditions.assignee_user_ids"]
    );

    // A snippet is substitution only: no string repetition, loops or arithmetic.
    for body in [
        "{{ 'x' * 50000000 }}",
        "{% for i in range(9999999) %}x{% endfor %}",
    ] {
        let snippet = CreateSnippetRequest {
            shortcut: "big".into(),
            title: "Big".into(),
            body: body.into(),
            personal: false,
        };
        let refused = conversations.create_snippet(authed(&token, snippet)).await;
        assert_eq!(named(refused), ["body"], "{body}");
    }

    let mut workspaces = api.workspaces.clone();
    for role in [99, -1] {
        let user = CreateUserRequest {
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            role,
        };
        assert_eq!(
            named(workspaces.create_user(authed(&token, user)).await),
            ["role"]
        );
    }
    let user = CreateUserRequest {
        email: "ada@example.com".into(),
        display_name: "Ada\0Lovelace".into(),
        role: 1,
    };
    assert_eq!(
        named(workspaces.create_user(authed(&token, user)).await),
        ["display_name"]
    );
    assert!(
        api.list_users(true)
            .await
            .iter()
            .all(|u| u.email != "ada@example.com")
    );
}
