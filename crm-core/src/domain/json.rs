//! JSON objects only: serde's derive also reads a struct from an array of
//! its fields (`["https://…", null]` as a `MediaRef`), which no client means
//! and which an API schema does not allow. Types that arrive in request
//! bodies derive with `#[serde(remote = "Self")]` and get their trait impls
//! from [`json_object_only!`](crate::json_object_only), which refuses anything but an object.

/// Implements `Serialize` and `Deserialize` for types that derive them with
/// `#[serde(remote = "Self")]`, accepting only a JSON object when
/// deserializing. Public for crates whose request types need the same rule.
#[macro_export]
#[doc(hidden)]
macro_rules! json_object_only {
    (deserialize $($t:ty),* $(,)?) => {$(
        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                use ::serde::de::Error as _;
                let value = <::serde_json::Value as ::serde::Deserialize>::deserialize(d)?;
                if !value.is_object() {
                    return Err(D::Error::invalid_type(
                        ::serde::de::Unexpected::Other("a JSON value other than an object"),
                        &"a JSON object",
                    ));
                }
                <$t>::deserialize(value).map_err(D::Error::custom)
            }
        }
    )*};
    ($($t:ty),* $(,)?) => {$(
        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                use ::serde::de::Error as _;
                let value = <::serde_json::Value as ::serde::Deserialize>::deserialize(d)?;
                if !value.is_object() {
                    return Err(D::Error::invalid_type(
                        ::serde::de::Unexpected::Other("a JSON value other than an object"),
                        &"a JSON object",
                    ));
                }
                <$t>::deserialize(value).map_err(D::Error::custom)
            }
        }

        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                <$t>::serialize(self, s)
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use crate::{MediaRef, MessageContent, Pacing, WarmupStep};
    use serde_json::json;

    #[test]
    fn objects_are_read_and_arrays_refused() {
        let p: Pacing = serde_json::from_value(json!({ "per_second": 5, "warmup": [{ "day": 0, "cap": 9 }] })).unwrap();
        assert_eq!(p.warmup, [WarmupStep { day: 0, cap: 9 }]);
        assert_eq!(serde_json::to_value(&p).unwrap(), json!({ "per_second": 5, "warmup": [{ "day": 0, "cap": 9 }] }));
        assert!(serde_json::from_value::<Pacing>(json!([null, null])).is_err());
        assert!(serde_json::from_value::<Pacing>(json!({ "warmup": [[0, 9]] })).is_err());
        let m: MediaRef = serde_json::from_value(json!({ "location": "https://x/y.jpg", "mime_type": null })).unwrap();
        assert_eq!(m.location, "https://x/y.jpg");
        let inside_a_tagged_enum = json!({ "type": "media", "kind": "image", "media": ["https://x", null], "caption": null, "filename": null });
        assert!(serde_json::from_value::<MessageContent>(inside_a_tagged_enum).is_err());
    }
}
