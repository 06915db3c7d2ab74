//! Lenient decoding helpers and the open-enum macro.
//!
//! Opal's published spec disagrees with what its servers may send: fields listed as required can be
//! absent, nullable strings arrive as `null`, and some string identifiers (access level remote IDs,
//! remote IDs) appear as JSON numbers in examples. These helpers decode all of that without failing,
//! because a sync that stops on one odd field is worse than one that reads it as empty.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Decodes a string that may arrive as a string, number, boolean or `null` (`null` becomes `""`).
pub(crate) fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(opt_string(deserializer)?.unwrap_or_default())
}

/// Like [`string`] but keeps `null` distinct from an empty string.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    deserializer.deserialize_any(ScalarAsString)
}

struct ScalarAsString;

impl<'de> Visitor<'de> for ScalarAsString {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Decodes a value that may be `null` as its default (empty list, `false`, default access level).
pub(crate) fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Decodes an optional timestamp: RFC 3339, or a bare `YYYY-MM-DD` date read as midnight UTC;
/// `null` and `""` mean absent.
pub(crate) fn opt_datetime<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(raw) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    parse_timestamp(raw)
        .map(Some)
        .ok_or_else(|| de::Error::custom(format!("invalid timestamp {raw:?}")))
}

fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc())
}

/// Declares an Opal enum that decodes values it does not know into `Unknown(String)` instead of
/// failing (Opal adds group, resource and app types often). Known values also match
/// case-insensitively because spec examples use lower-case spellings such as `pending`.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The value as Opal spells it on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Unknown(raw) => raw,
                }
            }

            /// Parses a wire value; never fails.
            pub fn from_wire(raw: &str) -> Self {
                match raw {
                    $( $wire => Self::$variant, )+
                    _ => {
                        $( if raw.eq_ignore_ascii_case($wire) { return Self::$variant; } )+
                        Self::Unknown(raw.to_owned())
                    }
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Ok(Self::from_wire(raw))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = $crate::opal::model::wire::string(deserializer)?;
                Ok(Self::from_wire(&raw))
            }
        }
    };
}

pub(crate) use open_enum;
