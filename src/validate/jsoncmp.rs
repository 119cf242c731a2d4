//! Comparing received JSON (`sonic_rs::Value`) with values from definitions (`serde_json::Value`):
//! `fixed[x]` is exact equality, `pattern[x]` is containment (every property and array item of
//! the pattern is present in the instance). Numbers compare by value, not by spelling.

use serde_json::Value as Def;
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

fn num_eq(v: &Value, d: &serde_json::Number) -> bool {
    let raw = match v.as_raw_number() {
        Some(r) => r.as_str().to_owned(),
        None => match v.as_number() {
            Some(n) => n.to_string(),
            None => return false,
        },
    };
    if raw == d.to_string() {
        return true;
    }
    match (raw.parse::<f64>(), d.as_f64()) {
        (Ok(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `fixed[x]`: the instance is exactly the definition's value.
pub fn equals(v: &Value, d: &Def) -> bool {
    match d {
        Def::Null => v.is_null(),
        Def::Bool(b) => v.as_bool() == Some(*b),
        Def::String(s) => v.as_str() == Some(s.as_str()),
        Def::Number(n) => v.is_number() && num_eq(v, n),
        Def::Array(items) => v.as_array().is_some_and(|a| {
            a.len() == items.len() && a.iter().zip(items).all(|(x, y)| equals(x, y))
        }),
        Def::Object(map) => v.as_object().is_some_and(|o| {
            o.len() == map.len()
                && map
                    .iter()
                    .all(|(k, dv)| o.get(&k.as_str()).is_some_and(|x| equals(x, dv)))
        }),
    }
}

/// `pattern[x]`: every part of the pattern is in the instance; instance arrays may hold more.
pub fn contains(v: &Value, d: &Def) -> bool {
    match d {
        Def::Array(items) => v
            .as_array()
            .is_some_and(|a| items.iter().all(|p| a.iter().any(|x| contains(x, p)))),
        Def::Object(map) => v.as_object().is_some_and(|o| {
            map.iter()
                .all(|(k, dv)| o.get(&k.as_str()).is_some_and(|x| contains(x, dv)))
        }),
        _ => equals(v, d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(j: &str) -> Value {
        sonic_rs::Deserializer::from_str(j)
            .use_rawnumber()
            .deserialize()
            .unwrap()
    }

    #[test]
    fn pattern_allows_extra_properties_and_items() {
        let p = serde_json::json!({"coding":[{"system":"s","code":"c"}]});
        assert!(contains(
            &s(
                r#"{"coding":[{"system":"x","code":"y"},{"system":"s","code":"c","display":"d"}],"text":"t"}"#
            ),
            &p
        ));
        assert!(!contains(
            &s(r#"{"coding":[{"system":"s","code":"d"}]}"#),
            &p
        ));
        assert!(!equals(
            &s(r#"{"coding":[{"system":"s","code":"c","display":"d"}]}"#),
            &p
        ));
        assert!(equals(&s(r#"{"coding":[{"system":"s","code":"c"}]}"#), &p));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(equals(&s("1.50"), &serde_json::json!(1.5)));
        assert!(!equals(&s("1.51"), &serde_json::json!(1.5)));
        assert!(!equals(&s("\"1.5\""), &serde_json::json!(1.5)));
    }
}
