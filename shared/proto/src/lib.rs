//! Generated types for the IS-Messenger protos (`proto/ism/**`).
#![allow(clippy::all, missing_docs)]

/// Every proto's file descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ism_descriptor.bin"));

pub mod codec;

pub mod types {
    pub mod v1 {
        tonic::include_proto!("ism.types.v1");
    }
}
pub mod events {
    pub mod v1 {
        tonic::include_proto!("ism.events.v1");
    }
}
pub mod workspaces {
    pub mod v1 {
        tonic::include_proto!("ism.workspaces.v1");
    }
}
pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("ism.gateway.v1");
    }
}
/// References to the profile fields of any value with them (the API's Contact, a stored
/// Contact, a normalized profile), in the order of `Contact::PROFILE_FIELDS`.
#[macro_export]
macro_rules! profile_values {
    ($contact:expr) => {
        [
            &$contact.first_name,
            &$contact.last_name,
            &$contact.email,
            &$contact.phone,
            &$contact.language,
            &$contact.country,
            &$contact.timezone,
            &$contact.picture_url,
        ]
    };
}

pub mod contacts {
    pub mod v1 {
        tonic::include_proto!("ism.contacts.v1");

        impl Contact {
            /// The default profile fields every Contact has, by name, in the order of
            /// [`Contact::profile`]. The one list of them: the contacts service stores,
            /// merges, imports and exports these; snippets name them as `contact.<name>`.
            pub const PROFILE_FIELDS: [&'static str; 8] = [
                "first_name",
                "last_name",
                "email",
                "phone",
                "language",
                "country",
                "timezone",
                "picture_url",
            ];

            /// The values of [`Contact::PROFILE_FIELDS`], in order.
            pub fn profile(&self) -> [&String; 8] {
                crate::profile_values!(self)
            }
        }
    }
}
pub mod conversations {
    pub mod v1 {
        tonic::include_proto!("ism.conversations.v1");
    }
}
pub mod broadcasts {
    pub mod v1 {
        tonic::include_proto!("ism.broadcasts.v1");
    }
}
pub mod workflows {
    pub mod v1 {
        tonic::include_proto!("ism.workflows.v1");
    }
}
pub mod integrations {
    pub mod v1 {
        tonic::include_proto!("ism.integrations.v1");
    }
}
