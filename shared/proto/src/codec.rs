//! The codec of every IS-Messenger gRPC method: prost's encoding, and every request
//! checked on its way in, so no handler sees input it could not store or answer.
//!
//! A request that does not decode (invalid UTF-8 in a string, a truncated varint,
//! nesting past the recursion limit) answers INVALID_ARGUMENT naming the field where
//! decoding failed, where tonic's own codec answers INTERNAL. A request that decodes is
//! refused with INVALID_ARGUMENT naming every field that holds:
//! - a string longer than its limit ([`MAX_CHARS`] unless the field's
//!   `(ism.types.v1.limits).max_chars` option says otherwise) or holding NUL;
//! - more items than its limit ([`MAX_ITEMS`], or `(ism.types.v1.limits).max_items`);
//! - an enum number its enum does not define;
//! - a timestamp outside the years 0001 to 9999.
//!
//! Refusals name fields (`profile.email`, `rows[3].phone`) and never quote a value.
//! Responses are not checked: a client decoding one keeps tonic's INTERNAL for a
//! response that does not decode.
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::LazyLock;

use bytes::Buf;
use prost::encoding::{WireType, decode_key, decode_varint};
use prost::{Message, Name};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value,
};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::ProstEncoder;
use tonic_types::{ErrorDetails, StatusExt};

/// The most characters a request's string field holds unless its `limits` option says
/// otherwise.
pub const MAX_CHARS: u32 = 4096;
/// The most items a request's repeated or map field holds unless its `limits` option
/// says otherwise.
pub const MAX_ITEMS: u32 = 1000;
/// A refusal names at most this many violations, so its details stay small.
const MAX_VIOLATIONS: usize = 20;
/// prost's own recursion limit: deeper nesting does not decode.
const MAX_DEPTH: u32 = 100;
/// The seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of
/// `google.protobuf.Timestamp`.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// Every IS-Messenger message, enum, service and option, from the descriptors compiled
/// with the protos.
pub fn descriptors() -> &'static DescriptorPool {
    static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
        DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled with the protos decodes")
    });
    &POOL
}

/// The limits of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most characters of a string field.
    pub max_chars: u32,
    /// The most items of a repeated or map field.
    pub max_items: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_chars: MAX_CHARS,
            max_items: MAX_ITEMS,
        }
    }
}

/// The limits of `field` (by full name): the defaults, or its `limits` option.
pub fn limits(field: &FieldDescriptor) -> Limits {
    static OPTIONS: LazyLock<HashMap<String, Limits>> = LazyLock::new(annotated);
    OPTIONS.get(field.full_name()).copied().unwrap_or_default()
}

/// The fields whose `(ism.types.v1.limits)` option departs from the defaults.
fn annotated() -> HashMap<String, Limits> {
    let pool = descriptors();
    let Some(extension) = pool.get_extension_by_name("ism.types.v1.limits") else {
        return HashMap::new();
    };
    let mut annotated = HashMap::new();
    for message in pool.all_messages() {
        for field in message.fields() {
            let options = field.options();
            if !options.has_extension(&extension) {
                continue;
            }
            let option = options.get_extension(&extension);
            let Some(option) = option.as_message() else {
                continue;
            };
            let read = |name: &str, default: u32| {
                option
                    .get_field_by_name(name)
                    .and_then(|v| v.as_u32())
                    .filter(|n| *n > 0)
                    .unwrap_or(default)
            };
            let limits = Limits {
                max_chars: read("max_chars", MAX_CHARS),
                max_items: read("max_items", MAX_ITEMS),
            };
            annotated.insert(field.full_name().to_owned(), limits);
        }
    }
    annotated
}

/// The request messages of every method, by full name: what the decoder checks. A
/// message that some method also answers with is left out, so a client never refuses
/// a response.
fn requests() -> &'static HashMap<String, MessageDescriptor> {
    static REQUESTS: LazyLock<HashMap<String, MessageDescriptor>> = LazyLock::new(|| {
        let pool = descriptors();
        let methods: Vec<_> = pool
            .services()
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .collect();
        let outputs: Vec<String> = methods
            .iter()
            .map(|m| m.output().full_name().to_owned())
            .collect();
        methods
            .iter()
            .map(|m| m.input())
            .filter(|input| !outputs.iter().any(|o| o == input.full_name()))
            .map(|input| (input.full_name().to_owned(), input))
            .collect()
    });
    &REQUESTS
}

/// prost's encoding with every request checked as the module says.
#[derive(Debug, Clone)]
pub struct CheckedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CheckedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for CheckedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(PhantomData)
    }
}

/// Decodes a `U`, checking it when it is a request.
#[derive(Debug, Clone)]
pub struct CheckedDecoder<U>(PhantomData<U>);

impl<U: Message + Name + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        let request = requests().get(&U::full_name());
        let message = U::decode(bytes.clone()).map_err(|error| match request {
            Some(descriptor) => undecodable(descriptor, &bytes, &error),
            None => Status::internal(error.to_string()),
        })?;
        // The wire walk clears almost every request without building anything; only one
        // it cannot clear is decoded reflectively, to name each violation.
        if let Some(descriptor) = request
            && !clean(descriptor, &bytes, 0, None)
        {
            let dynamic = DynamicMessage::decode(descriptor.clone(), bytes.clone())
                .map_err(|error| undecodable(descriptor, &bytes, &error))?;
            let violations = violations(&dynamic);
            if !violations.is_empty() {
                return Err(refusal(violations));
            }
        }
        Ok(Some(message))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Whether the encoded `message` surely keeps every rule, read from its wire bytes
/// without allocating. `false` means "maybe not", also for encodings no client sends
/// (a singular field twice, groups); the reflective walk then decides. Strings of a map
/// entry (`entry`) are held to the map field's limits, as the reflective walk does.
fn clean(message: &MessageDescriptor, mut buf: &[u8], depth: u32, entry: Option<Limits>) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    // Occurrences per field number, for the item limits and singular fields.
    let mut seen: Vec<(u32, u32)> = Vec::new();
    while buf.has_remaining() {
        let Ok((number, wire)) = decode_key(&mut buf) else {
            return false;
        };
        let field = message.get_field(number);
        let payload: &[u8] = match wire {
            WireType::Varint => {
                let Ok(value) = decode_varint(&mut buf) else {
                    return false;
                };
                if let Some(field) = &field
                    && let Kind::Enum(enumeration) = field.kind()
                    && enumeration.get_value(value as i32).is_none()
                {
                    return false;
                }
                &[]
            }
            WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                let size = if wire == WireType::SixtyFourBit { 8 } else { 4 };
                if buf.remaining() < size {
                    return false;
                }
                buf.advance(size);
                &[]
            }
            WireType::LengthDelimited => {
                let Ok(len) = decode_varint(&mut buf) else {
                    return false;
                };
                let Ok(len) = usize::try_from(len) else {
                    return false;
                };
                if len > buf.len() {
                    return false;
                }
                let (payload, rest) = buf.split_at(len);
                buf = rest;
                payload
            }
            WireType::StartGroup | WireType::EndGroup => return false,
        };
        let Some(field) = field else {
            continue;
        };
        let limits = entry.unwrap_or_else(|| limits(&field));
        let repeated = field.is_list() || field.is_map();
        let items = match (wire, field.kind()) {
            (WireType::LengthDelimited, Kind::String) => {
                if payload.contains(&0)
                    || (payload.len() > limits.max_chars as usize
                        && std::str::from_utf8(payload)
                            .map_or(true, |s| s.chars().count() > limits.max_chars as usize))
                {
                    return false;
                }
                1
            }
            (WireType::LengthDelimited, Kind::Message(inner)) => {
                let fits = if inner.full_name() == "google.protobuf.Timestamp" {
                    prost_types::Timestamp::decode(payload).is_ok_and(|t| {
                        TIMESTAMP_SECONDS.contains(&t.seconds)
                            && (0..1_000_000_000).contains(&t.nanos)
                    })
                } else {
                    let inherited = field.is_map().then_some(limits);
                    clean(&inner, payload, depth + 1, inherited)
                };
                if !fits {
                    return false;
                }
                1
            }
            (WireType::LengthDelimited, Kind::Bytes) => 1,
            // A packed run of numbers.
            (WireType::LengthDelimited, kind) => {
                let mut run = payload;
                let mut count = 0u32;
                while run.has_remaining() {
                    match kind {
                        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 if run.len() >= 8 => {
                            run.advance(8)
                        }
                        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 if run.len() >= 4 => {
                            run.advance(4)
                        }
                        Kind::Double
                        | Kind::Fixed64
                        | Kind::Sfixed64
                        | Kind::Float
                        | Kind::Fixed32
                        | Kind::Sfixed32 => return false,
                        _ => match decode_varint(&mut run) {
                            Ok(value) => {
                                if let Kind::Enum(enumeration) = &kind
                                    && enumeration.get_value(value as i32).is_none()
                                {
                                    return false;
                                }
                            }
                            Err(_) => return false,
                        },
                    }
                    count += 1;
                }
                count
            }
            _ => 1,
        };
        let occurrences = match seen.iter_mut().find(|(n, _)| *n == number) {
            Some((_, count)) => {
                *count += items;
                *count
            }
            None => {
                seen.push((number, items));
                items
            }
        };
        if (repeated && occurrences > limits.max_items) || (!repeated && occurrences > 1) {
            return false;
        }
    }
    true
}

/// One field's violation: its path and why, without its value.
type Violation = (String, String);

/// Every violation of the module's rules in `message`, at most [`MAX_VIOLATIONS`].
pub fn violations(message: &DynamicMessage) -> Vec<Violation> {
    let mut found = Vec::new();
    walk(message, "", &mut found);
    found.truncate(MAX_VIOLATIONS);
    found
}

fn walk(message: &DynamicMessage, path: &str, found: &mut Vec<Violation>) {
    for (field, value) in message.fields() {
        if found.len() >= MAX_VIOLATIONS {
            return;
        }
        let at = join(path, field.name());
        let limits = limits(&field);
        match value {
            Value::List(items) => {
                if items.len() > limits.max_items as usize {
                    let reason =
                        format!("holds {} items; at most {}", items.len(), limits.max_items);
                    found.push((at.clone(), reason));
                }
                for (n, item) in items.iter().enumerate() {
                    check(&field.kind(), item, &format!("{at}[{n}]"), limits, found);
                }
            }
            Value::Map(entries) => {
                if entries.len() > limits.max_items as usize {
                    let reason = format!(
                        "holds {} entries; at most {}",
                        entries.len(),
                        limits.max_items
                    );
                    found.push((at.clone(), reason));
                }
                let Kind::Message(entry) = field.kind() else {
                    continue;
                };
                let value_kind = entry.map_entry_value_field().kind();
                for (key, value) in entries {
                    let item = match key {
                        MapKey::String(key) => {
                            check_text(key, &format!("{at} key"), limits.max_chars, found);
                            format!("{at}[{}]", short(key))
                        }
                        MapKey::Bool(key) => format!("{at}[{key}]"),
                        MapKey::I32(key) => format!("{at}[{key}]"),
                        MapKey::I64(key) => format!("{at}[{key}]"),
                        MapKey::U32(key) => format!("{at}[{key}]"),
                        MapKey::U64(key) => format!("{at}[{key}]"),
                    };
                    check(&value_kind, value, &item, limits, found);
                }
            }
            value => check(&field.kind(), value, &at, limits, found),
        }
    }
}

fn check(kind: &Kind, value: &Value, at: &str, limits: Limits, found: &mut Vec<Violation>) {
    match (kind, value) {
        (_, Value::String(text)) => check_text(text, at, limits.max_chars, found),
        (Kind::Enum(enumeration), Value::EnumNumber(number)) => {
            if enumeration.get_value(*number).is_none() {
                let reason = format!("{number} is not a value of {}", enumeration.name());
                found.push((at.to_owned(), reason));
            }
        }
        (_, Value::Message(message))
            if message.descriptor().full_name() == "google.protobuf.Timestamp" =>
        {
            check_timestamp(message, at, found);
        }
        (_, Value::Message(message)) => walk(message, at, found),
        _ => {}
    }
}

fn check_text(text: &str, at: &str, max_chars: u32, found: &mut Vec<Violation>) {
    if text.contains('\0') {
        found.push((at.to_owned(), "must not contain NUL".to_owned()));
    }
    if text.len() > max_chars as usize {
        let chars = text.chars().count();
        if chars > max_chars as usize {
            let reason = format!("holds {chars} characters; at most {max_chars}");
            found.push((at.to_owned(), reason));
        }
    }
}

fn check_timestamp(timestamp: &DynamicMessage, at: &str, found: &mut Vec<Violation>) {
    let read = |name: &str| {
        timestamp
            .get_field_by_name(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_i32().map(i64::from)))
            .unwrap_or_default()
    };
    if !TIMESTAMP_SECONDS.contains(&read("seconds")) {
        let reason = "must fall between 0001-01-01 and 9999-12-31".to_owned();
        found.push((at.to_owned(), reason));
    }
    if !(0..1_000_000_000).contains(&read("nanos")) {
        let reason = "nanos must be 0 to 999,999,999".to_owned();
        found.push((join(at, "nanos"), reason));
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// A map key as a path segment: at most 32 characters of it.
fn short(key: &str) -> String {
    let mut segment: String = key.chars().take(32).filter(|c| !c.is_control()).collect();
    if key.chars().count() > 32 {
        segment.push('…');
    }
    segment
}

/// INVALID_ARGUMENT for a request that does not decode, naming where it stops
/// decoding.
fn undecodable(descriptor: &MessageDescriptor, bytes: &[u8], error: &prost::DecodeError) -> Status {
    let field = locate(descriptor, bytes, String::new(), 0)
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| "request".to_owned());
    refusal(vec![(field, format!("does not decode: {}", cause(error)))])
}

/// What prost says went wrong, without the message and field names it puts before it.
fn cause(error: &prost::DecodeError) -> String {
    let text = error.to_string();
    let text = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    let mut rest = text;
    while let Some((head, tail)) = rest.split_once(": ") {
        let location = head.split_once('.').is_some_and(|(message, field)| {
            [message, field].iter().all(|s| {
                !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "_#".contains(c))
            })
        });
        if !location {
            break;
        }
        rest = tail;
    }
    rest.to_owned()
}

/// The path of the first field of `bytes` (a `descriptor` message) that does not
/// decode: a truncated value, a string that is not UTF-8, nesting past prost's limit.
fn locate(
    descriptor: &MessageDescriptor,
    mut bytes: &[u8],
    path: String,
    depth: u32,
) -> Option<String> {
    if depth >= MAX_DEPTH {
        return Some(path);
    }
    let mut seen: HashMap<u32, usize> = HashMap::new();
    while bytes.has_remaining() {
        let Ok((number, wire)) = decode_key(&mut bytes) else {
            return Some(path);
        };
        let field = descriptor.get_field(number);
        let at = match &field {
            Some(field) if field.is_list() => {
                let n = seen.entry(number).or_default();
                *n += 1;
                format!("{}[{}]", join(&path, field.name()), *n - 1)
            }
            Some(field) => join(&path, field.name()),
            None => path.clone(),
        };
        let skip = match wire {
            WireType::Varint => {
                if decode_varint(&mut bytes).is_err() {
                    return Some(at);
                }
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => {
                let Ok(len) = decode_varint(&mut bytes) else {
                    return Some(at);
                };
                let Some(chunk) = usize::try_from(len).ok().and_then(|len| bytes.get(..len)) else {
                    return Some(at);
                };
                let invalid = match field.as_ref().map(FieldDescriptor::kind) {
                    Some(Kind::String) => std::str::from_utf8(chunk).is_err().then(|| at.clone()),
                    Some(Kind::Message(inner)) => locate(&inner, chunk, at.clone(), depth + 1),
                    _ => None,
                };
                if invalid.is_some() {
                    return invalid;
                }
                chunk.len()
            }
            WireType::StartGroup | WireType::EndGroup => return Some(at),
        };
        if bytes.len() < skip {
            return Some(at);
        }
        bytes.advance(skip);
    }
    None
}

/// INVALID_ARGUMENT with a `BadRequest` naming each violation, its message in the
/// platform's form (`field: reason; field: reason`).
fn refusal(violations: Vec<Violation>) -> Status {
    let message = violations
        .iter()
        .map(|(field, reason)| format!("{field}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut details = ErrorDetails::new();
    for (field, reason) in violations {
        details.add_bad_request_violation(field, reason);
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::v1::{
        FieldValue, MatchContactsRequest, UpdateContactRequest, field_value,
    };
    use crate::conversations::v1::SnoozeConversationRequest;
    use crate::workspaces::v1::{CreateUserRequest, Role};

    /// What the wire walk says of `message`, beside whether the reflective walk finds
    /// nothing: the walk may doubt a clean request, never pass a bad one.
    fn verdicts<M: Message + Name>(message: &M) -> (bool, bool) {
        let bytes = message.encode_to_vec();
        let descriptor = requests().get(&M::full_name()).expect("a request type");
        let dynamic = DynamicMessage::decode(descriptor.clone(), bytes.as_slice()).unwrap();
        (
            clean(descriptor, &bytes, 0, None),
            violations(&dynamic).is_empty(),
        )
    }

    /// An UpdateContact setting `email` and the custom fields `fields` to texts.
    fn update(email: Option<String>, fields: Vec<(String, String)>) -> UpdateContactRequest {
        UpdateContactRequest {
            id: "c1".into(),
            email,
            custom_fields: fields
                .into_iter()
                .map(|(key, text)| {
                    let value = FieldValue {
                        kind: Some(field_value::Kind::Text(text)),
                    };
                    (key, value)
                })
                .collect(),
            ..Default::default()
        }
    }

    fn field(key: &str, text: &str) -> Vec<(String, String)> {
        vec![(key.to_owned(), text.to_owned())]
    }

    #[test]
    fn the_wire_walk_clears_good_requests_and_never_a_bad_one() {
        let ids = |n: usize| MatchContactsRequest {
            filter: None,
            contact_ids: (0..n).map(|i| i.to_string()).collect(),
        };
        let snooze = |seconds: i64, nanos: i32| SnoozeConversationRequest {
            id: "x".into(),
            until: Some(prost_types::Timestamp { seconds, nanos }),
        };
        let user = |role: i32| CreateUserRequest {
            email: "a@example.com".into(),
            display_name: "A".into(),
            role,
        };
        let accented = "é".repeat(4096);
        let many = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let good = [
            verdicts(&ids(10_000)),
            verdicts(&snooze(1_900_000_000, 999_999_999)),
            verdicts(&user(Role::Agent as i32)),
            verdicts(&update(Some(accented.clone()), field("tier", "gold"))),
            verdicts(&update(None, field("note", &accented))),
            verdicts(&update(None, many(1000))),
        ];
        for (n, (walk, reflective)) in good.into_iter().enumerate() {
            assert!(reflective, "case {n} is good");
            assert!(walk, "the walk clears good case {n}");
        }
        let bad = [
            verdicts(&ids(10_001)),
            verdicts(&snooze(253_402_300_800, 0)),
            verdicts(&snooze(0, -1)),
            verdicts(&user(99)),
            verdicts(&user(-1)),
            verdicts(&update(Some("a\0b".into()), Vec::new())),
            verdicts(&update(Some("x".repeat(4097)), Vec::new())),
            verdicts(&update(None, field("note", &"x".repeat(4097)))),
            verdicts(&update(None, field("no\0te", "x"))),
            verdicts(&update(None, many(1001))),
        ];
        for (n, (walk, reflective)) in bad.into_iter().enumerate() {
            assert!(!reflective, "case {n} is bad");
            assert!(!walk, "the walk doubts bad case {n}");
        }
    }
}
