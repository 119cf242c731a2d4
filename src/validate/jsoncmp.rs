//! Comparing received JSON (a node of the walk's [`Tree`](super::tree)) with values from
//! definitions (`serde_json::Value`): `fixed[x]` is exact equality, `pattern[x]` is containment
//! (every property and array item of the pattern is present in the instance). Numbers compare by
//! value, not by spelling.

use serde_json::Value as Def;

use super::tree::N;

fn num_eq(v: &N<'_>, d: &serde_json::Number) -> bool {
    let Some(raw) = v.raw_number() else {
        return false;
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
pub fn equals(v: &N<'_>, d: &Def) -> bool {
    match d {
        Def::Null => v.is_null(),
        Def::Bool(b) => v.as_bool() == Some(*b),
        Def::String(s) => v.as_str() == Some(s.as_str()),
        Def::Number(n) => v.is_number() && num_eq(v, n),
        Def::Array(items) => {
            v.is_array()
                && v.len() == items.len()
                && v.items().zip(items).all(|(x, y)| equals(&x, y))
        }
        Def::Object(map) => {
            v.is_object()
                && v.len() == map.len()
                && map
                    .iter()
                    .all(|(k, dv)| v.get(k.as_str()).is_some_and(|x| equals(&x, dv)))
        }
    }
}

/// `pattern[x]`: every part of the pattern is in the instance; instance arrays may hold more.
pub fn contains(v: &N<'_>, d: &Def) -> bool {
    match d {
        Def::Array(items) => {
            v.is_array() && items.iter().all(|p| v.items().any(|x| contains(&x, p)))
        }
        Def::Object(map) => {
            v.is_object()
                && map
                    .iter()
                    .all(|(k, dv)| v.get(k.as_str()).is_some_and(|x| contains(&x, dv)))
        }
        _ => equals(v, d),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::Tree;
    use super::*;

    fn contains_json(v: &str, p: &Def) -> bool {
        contains(&Tree::parse(v.as_bytes()).unwrap().root(), p)
    }

    fn equals_json(v: &str, p: &Def) -> bool {
        equals(&Tree::parse(v.as_bytes()).unwrap().root(), p)
    }

    #[test]
    fn pattern_allows_extra_properties_and_items() {
        let p = serde_json::json!({"coding":[{"system":"s","code":"c"}]});
        assert!(contains_json(
            r#"{"coding":[{"system":"x","code":"y"},{"system":"s","code":"c","display":"d"}],"text":"t"}"#,
            &p
        ));
        assert!(!contains_json(
            r#"{"coding":[{"system":"s","code":"d"}]}"#,
            &p
        ));
        assert!(!equals_json(
            r#"{"coding":[{"system":"s","code":"c","display":"d"}]}"#,
            &p
        ));
        assert!(equals_json(r#"{"coding":[{"system":"s","code":"c"}]}"#, &p));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(equals_json("1.50", &serde_json::json!(1.5)));
        assert!(!equals_json("1.51", &serde_json::json!(1.5)));
        assert!(!equals_json("\"1.5\"", &serde_json::json!(1.5)));
    }
}
