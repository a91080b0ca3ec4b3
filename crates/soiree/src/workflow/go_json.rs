//! How Go's `encoding/json` writes zero values, for the payload fields that
//! need it: an unset enum is `""` and a nil slice is `null`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An optional enum field: `None` is written as Go's zero value `""`, and
/// `""` or `null` read back as `None`.
pub(super) mod optional_enum {
    use std::borrow::Cow;
    use std::str::FromStr;

    use super::{Deserialize, Deserializer, Serialize, Serializer};

    pub(in crate::workflow) fn serialize<T, S>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        match value {
            Some(value) => value.serialize(serializer),
            None => serializer.serialize_str(""),
        }
    }

    pub(in crate::workflow) fn deserialize<'de, T, D>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
        D: Deserializer<'de>,
    {
        match Option::<Cow<'de, str>>::deserialize(deserializer)? {
            None => Ok(None),
            Some(value) if value.is_empty() => Ok(None),
            Some(value) => value.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// A slice field: Go writes a nil slice as `null`, which reads back empty.
pub(super) fn nullable_vec<'de, T, D>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}
