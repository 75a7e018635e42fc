//! Protobuf messages as proto3 JSON with the proto's field names (enums by name, fields at
//! their default included), through the descriptors compiled with the protos: webhook
//! bodies, run histories.
use ism_proto::codec::descriptors;
use prost::Name;
use prost_reflect::{DynamicMessage, SerializeOptions};
use serde_json::Value;

/// The JSON of the message of type `name` encoded in `bytes`, or why there is none.
pub fn encoded(name: &str, bytes: &[u8]) -> Result<Value, String> {
    let descriptor = descriptors()
        .get_message_by_name(name)
        .ok_or_else(|| format!("unknown message type {name:?}"))?;
    let message =
        DynamicMessage::decode(descriptor, bytes).map_err(|e| format!("not a {name}: {e}"))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| format!("{name} has no JSON form: {e}"))
}

/// The JSON of the message in `any`.
pub fn any(any: &prost_types::Any) -> Result<Value, String> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    encoded(name, &any.value)
}

/// The JSON of `message`.
pub fn message<M: Name>(message: &M) -> Value {
    encoded(&M::full_name(), &message.encode_to_vec()).unwrap_or(Value::Null)
}

/// Whether the descriptors know the message type `name`.
pub fn known(name: &str) -> bool {
    descriptors().get_message_by_name(name).is_some()
}
