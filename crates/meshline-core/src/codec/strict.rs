//! JSON whose objects have unique keys. `{"id":"a","id":"b"}` is refused rather than read as one
//! of the two: parsers disagree on which one wins, a classic way to slip a value past a check.

use std::collections::HashSet;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Checks that `json` is one JSON value whose objects, at every depth, have unique keys.
pub fn check_unique_keys(json: &[u8]) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    Unique.deserialize(&mut deserializer)?;
    deserializer.end()
}

/// Walks a value, refusing an object with a key twice.
struct Unique;

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Unique)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(Unique)?;
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check_unique_keys;

    #[test]
    fn a_key_twice_at_any_depth_is_refused() {
        let top = check_unique_keys(br#"{"id":"a","x":1,"id":"b"}"#).unwrap_err();
        assert!(top.to_string().contains("duplicate key `id`"), "{top}");
        assert!(check_unique_keys(br#"[{"data":{"n":1,"n":2}}]"#).is_err());
    }

    #[test]
    fn unique_keys_and_every_kind_of_value_pass() {
        check_unique_keys(br#"[{"a":1,"b":-2,"c":1.5,"d":"s","e":null,"f":true,"g":[{"a":1}]}]"#)
            .unwrap();
    }

    #[test]
    fn trailing_bytes_and_deep_nesting_are_errors_not_crashes() {
        assert!(check_unique_keys(br#"{"a":1} {"b":2}"#).is_err());
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(check_unique_keys(deep.as_bytes()).is_err());
    }
}
