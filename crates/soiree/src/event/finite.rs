//! JSON that every consumer can read back, checked while it is written
//! (no second pass): `serde_json` writes NaN and ±infinity as `null`, so a
//! payload holding one would be stored as something its listeners cannot
//! decode, and it writes any nesting depth although its parser stops at
//! 128 levels. The serializers here reject non-finite floats (as Go's
//! `encoding/json` does) and nesting deeper than
//! [`MAX_JSON_DEPTH`](crate::limits::MAX_JSON_DEPTH).

use std::cell::Cell;
use std::io;

use serde::ser::{self, Serialize, Serializer};
use serde_json::Value;

use crate::Error;
use crate::limits::MAX_JSON_DEPTH;

/// `serde_json::to_value`, failing on a non-finite float anywhere in
/// `value` and on nesting deeper than `MAX_JSON_DEPTH` (reported as `what`).
pub(crate) fn to_value<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> crate::Result<Value> {
    let exceeded = Cell::new(false);
    serde_json::to_value(Finite(value, Depth::new(&exceeded)))
        .map_err(|err| classify(err, what, &exceeded))
}

/// `serde_json::to_writer` with the checks of [`to_value`].
pub(crate) fn to_writer<W: io::Write, T: Serialize + ?Sized>(
    what: &'static str,
    writer: W,
    value: &T,
) -> crate::Result<()> {
    let exceeded = Cell::new(false);
    serde_json::to_writer(writer, &Finite(value, Depth::new(&exceeded)))
        .map_err(|err| classify(err, what, &exceeded))
}

fn classify(err: serde_json::Error, what: &'static str, exceeded: &Cell<bool>) -> Error {
    if exceeded.get() {
        Error::LimitExceeded {
            what,
            limit: MAX_JSON_DEPTH,
            actual: MAX_JSON_DEPTH + 1,
        }
    } else {
        Error::serialization(err)
    }
}

/// How deep the value being written is, and where to tell that it went too
/// deep (a serializer's error type cannot carry that apart from its text).
#[derive(Clone, Copy)]
struct Depth<'a> {
    level: usize,
    exceeded: &'a Cell<bool>,
}

impl<'a> Depth<'a> {
    fn new(exceeded: &'a Cell<bool>) -> Self {
        Self { level: 0, exceeded }
    }

    /// The depth inside `levels` more arrays or objects.
    fn deeper<E: ser::Error>(self, levels: usize) -> Result<Self, E> {
        let level = self.level + levels;
        if level > MAX_JSON_DEPTH {
            self.exceeded.set(true);
            return Err(E::custom(format_args!(
                "the value nests deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        Ok(Self { level, ..self })
    }
}

/// A value whose serialization rejects non-finite floats and deep nesting.
struct Finite<'a, T: ?Sized>(&'a T, Depth<'a>);

impl<T: Serialize + ?Sized> Serialize for Finite<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Checked(serializer, self.1))
    }
}

fn non_finite<E: ser::Error>(value: f64) -> E {
    E::custom(format_args!(
        "the payload holds the float {value}, which JSON cannot represent (NaN and infinities are rejected, not stored as null)"
    ))
}

/// A serializer that forwards to `S` and checks every float and every
/// nesting on the way.
struct Checked<'a, S>(S, Depth<'a>);

/// Forwards a compound serializer, wrapping each element.
struct Compound<'a, C>(C, Depth<'a>);

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.0.$method($($arg),*)
        }
    )*};
}

impl<'a, S: Serializer> Serializer for Checked<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'a, S::SerializeSeq>;
    type SerializeTuple = Compound<'a, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'a, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'a, S::SerializeMap>;
    type SerializeStruct = Compound<'a, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'a, S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            self.0.serialize_f32(v)
        } else {
            Err(non_finite(f64::from(v)))
        }
    }

    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            self.0.serialize_f64(v)
        } else {
            Err(non_finite(v))
        }
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Finite(value, self.1))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_struct(name, &Finite(value, self.1))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        // `{"variant": value}`
        let depth = self.1.deeper(1)?;
        self.0
            .serialize_newtype_variant(name, index, variant, &Finite(value, depth))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let depth = self.1.deeper(1)?;
        self.0.serialize_seq(len).map(|c| Compound(c, depth))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let depth = self.1.deeper(1)?;
        self.0.serialize_tuple(len).map(|c| Compound(c, depth))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let depth = self.1.deeper(1)?;
        self.0
            .serialize_tuple_struct(name, len)
            .map(|c| Compound(c, depth))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        // `{"variant": [fields]}`
        let depth = self.1.deeper(2)?;
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(|c| Compound(c, depth))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let depth = self.1.deeper(1)?;
        self.0.serialize_map(len).map(|c| Compound(c, depth))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let depth = self.1.deeper(1)?;
        self.0
            .serialize_struct(name, len)
            .map(|c| Compound(c, depth))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        // `{"variant": {fields}}`
        let depth = self.1.deeper(2)?;
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(|c| Compound(c, depth))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! compound {
    ($trait:ident, $method:ident) => {
        impl<C: ser::$trait> ser::$trait for Compound<'_, C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                self.0.$method(&Finite(value, self.1))
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.0.end()
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        self.0.serialize_key(&Finite(key, self.1))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_value(&Finite(value, self.1))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

macro_rules! compound_fields {
    ($trait:ident) => {
        impl<C: ser::$trait> ser::$trait for Compound<'_, C> {
            type Ok = C::Ok;
            type Error = C::Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), C::Error> {
                self.0.serialize_field(key, &Finite(value, self.1))
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
                self.0.skip_field(key)
            }

            fn end(self) -> Result<C::Ok, C::Error> {
                self.0.end()
            }
        }
    };
}

compound_fields!(SerializeStruct);
compound_fields!(SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::json;

    use super::{to_value, to_writer};
    use crate::Error;
    use crate::limits::MAX_JSON_DEPTH;

    #[derive(Serialize)]
    struct Reading {
        name: &'static str,
        values: Vec<f64>,
        by_key: BTreeMap<&'static str, f32>,
        maybe: Option<f64>,
        nested: Option<Box<Reading>>,
    }

    fn reading(bad: f64) -> Reading {
        Reading {
            name: "r",
            values: vec![1.5],
            by_key: BTreeMap::new(),
            maybe: None,
            nested: Some(Box::new(Reading {
                name: "inner",
                values: vec![2.0, bad],
                by_key: BTreeMap::new(),
                maybe: None,
                nested: None,
            })),
        }
    }

    #[test]
    fn finite_values_serialize_as_serde_json_does() {
        let value = reading(3.0);
        assert_eq!(
            to_value("payload", &value).unwrap(),
            serde_json::to_value(&value).unwrap()
        );
        assert_eq!(
            to_value("payload", &(1, 2.5f32, "x")).unwrap(),
            json!([1, 2.5, "x"])
        );
    }

    #[test]
    fn nesting_is_refused_past_the_limit_and_kept_at_it() {
        let nested = |depth: usize| {
            let mut value = json!(1);
            for _ in 0..depth {
                value = serde_json::Value::Array(vec![value]);
            }
            value
        };
        let at = nested(MAX_JSON_DEPTH);
        assert_eq!(to_value("payload", &at).unwrap(), at);
        let mut written = Vec::new();
        to_writer("payload", &mut written, &at).unwrap();
        assert_eq!(written, serde_json::to_vec(&at).unwrap());
        for past in [nested(MAX_JSON_DEPTH + 1), nested(100_000)] {
            let err = to_value("payload nesting depth", &past).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::LimitExceeded { what: "payload nesting depth", limit: MAX_JSON_DEPTH, actual } if actual == MAX_JSON_DEPTH + 1
                ),
                "{err}"
            );
            let err = to_writer("payload", std::io::sink(), &past).unwrap_err();
            assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
            // The value is not dropped recursively by serde_json at 100k
            // levels: leak it rather than overflow the test's stack.
            std::mem::forget(past);
        }
        // Enum variants count as the objects JSON writes for them.
        #[derive(Serialize)]
        enum Wrapped {
            Newtype(serde_json::Value),
            Struct { inner: serde_json::Value },
        }
        let depth = |value: &serde_json::Value| to_value("payload", value).map(|_| ());
        assert!(depth(&nested(MAX_JSON_DEPTH - 1)).is_ok());
        assert!(to_value("payload", &Wrapped::Newtype(nested(MAX_JSON_DEPTH - 1))).is_ok());
        assert!(to_value("payload", &Wrapped::Newtype(nested(MAX_JSON_DEPTH))).is_err());
        assert!(
            to_value(
                "payload",
                &Wrapped::Struct {
                    inner: nested(MAX_JSON_DEPTH - 2)
                }
            )
            .is_ok()
        );
        assert!(
            to_value(
                "payload",
                &Wrapped::Struct {
                    inner: nested(MAX_JSON_DEPTH - 1)
                }
            )
            .is_err()
        );
    }

    #[test]
    fn non_finite_floats_are_rejected_wherever_they_are() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(to_value("payload", &bad).is_err());
            assert!(to_value("payload", &reading(bad)).is_err(), "{bad}");
            assert!(to_value("payload", &Some(bad)).is_err());
            let err = to_value("payload", &BTreeMap::from([("k", bad as f32)])).unwrap_err();
            assert!(err.to_string().contains("JSON cannot represent"), "{err}");
        }
    }
}
