//! Enums kept in text columns.
//!
//! A state stored as text and compared as a string (`status == "closed"`) compiles with a
//! typo in it. [`stored_enum!`](crate::stored_enum) declares the enum once with its stored
//! spellings; rows decode into it (an unknown spelling is a decode error, not a silent
//! mismatch) and it binds as text, with no custom Postgres type to migrate.
use std::fmt;

#[doc(hidden)]
pub use sqlx;

/// A stored or requested spelling that names no value of the enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What was read.
    pub value: String,
    /// The spellings the enum knows.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value {:?}; expected one of {}",
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

/// Declares a `Copy` enum stored as text under the given spellings, with `as_str`,
/// `ALL`, `FromStr`, `Display`, and sqlx's `Type`, `Encode`, `Decode` and
/// `PgHasArrayType` for Postgres as `TEXT`.
///
/// ```
/// ism_platform::stored_enum! {
///     /// Where a message went.
///     pub enum Direction {
///         Inbound = "inbound",
///         Outbound = "outbound",
///     }
/// }
/// assert_eq!(Direction::Inbound.as_str(), "inbound");
/// assert_eq!("outbound".parse::<Direction>(), Ok(Direction::Outbound));
/// assert!("sideways".parse::<Direction>().is_err());
/// ```
#[macro_export]
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$( $name::$variant ),+];

            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::stored::UnknownValue;

            fn from_str(value: &str) -> ::std::result::Result<Self, Self::Err> {
                match value {
                    $( $text => Ok($name::$variant), )+
                    other => Err($crate::stored::UnknownValue {
                        value: other.to_owned(),
                        expected: &[$( $text ),+],
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::stored::sqlx::Type<$crate::stored::sqlx::Postgres> for $name {
            fn type_info() -> $crate::stored::sqlx::postgres::PgTypeInfo {
                <&str as $crate::stored::sqlx::Type<$crate::stored::sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &$crate::stored::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as $crate::stored::sqlx::Type<$crate::stored::sqlx::Postgres>>::compatible(ty)
            }
        }

        impl $crate::stored::sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> $crate::stored::sqlx::postgres::PgTypeInfo {
                <&str as $crate::stored::sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl<'q> $crate::stored::sqlx::Encode<'q, $crate::stored::sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::stored::sqlx::postgres::PgArgumentBuffer,
            ) -> ::std::result::Result<
                $crate::stored::sqlx::encode::IsNull,
                $crate::stored::sqlx::error::BoxDynError,
            > {
                <&str as $crate::stored::sqlx::Encode<'q, $crate::stored::sqlx::Postgres>>::encode(
                    self.as_str(),
                    buf,
                )
            }
        }

        impl<'r> $crate::stored::sqlx::Decode<'r, $crate::stored::sqlx::Postgres> for $name {
            fn decode(
                value: $crate::stored::sqlx::postgres::PgValueRef<'r>,
            ) -> ::std::result::Result<Self, $crate::stored::sqlx::error::BoxDynError> {
                let text =
                    <&str as $crate::stored::sqlx::Decode<'r, $crate::stored::sqlx::Postgres>>::decode(value)?;
                Ok(text.parse::<$name>()?)
            }
        }
    };
}
