//! A small ordered JSON value for the resources this module generates.
//!
//! `serde_json::Value` sorts object keys (the crate does not enable `preserve_order`), which would
//! put `resourceType` in the middle of every generated resource. Generated FHIR files are read by
//! people and diffed in review, so they keep FHIR's element order: this type serialises objects
//! in insertion order.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// An ordered JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    /// An empty object.
    pub fn obj() -> J {
        J::Obj(Vec::new())
    }

    /// Add a member (objects only; a no-op on other values).
    pub fn set(mut self, key: &str, value: impl Into<J>) -> J {
        if let J::Obj(members) = &mut self {
            members.push((key.to_owned(), value.into()));
        }
        self
    }

    /// Add a member when there is a value.
    pub fn set_opt<V: Into<J>>(self, key: &str, value: Option<V>) -> J {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Add an array member unless the array is empty (FHIR forbids empty arrays).
    pub fn set_arr(self, key: &str, items: Vec<J>) -> J {
        if items.is_empty() {
            self
        } else {
            self.set(key, J::Arr(items))
        }
    }

    /// Pretty JSON with a trailing newline, as committed to `profiles/`.
    pub fn to_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Convert to a `serde_json::Value` (keys then sort; use for APIs, not for files).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl From<&str> for J {
    fn from(s: &str) -> J {
        J::Str(s.to_owned())
    }
}
impl From<String> for J {
    fn from(s: String) -> J {
        J::Str(s)
    }
}
impl From<&String> for J {
    fn from(s: &String) -> J {
        J::Str(s.clone())
    }
}
impl From<bool> for J {
    fn from(b: bool) -> J {
        J::Bool(b)
    }
}
impl From<i64> for J {
    fn from(n: i64) -> J {
        J::Int(n)
    }
}
impl From<u64> for J {
    fn from(n: u64) -> J {
        J::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<usize> for J {
    fn from(n: usize) -> J {
        J::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<f64> for J {
    fn from(n: f64) -> J {
        J::Num(n)
    }
}
impl From<Vec<J>> for J {
    fn from(v: Vec<J>) -> J {
        J::Arr(v)
    }
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Null => s.serialize_unit(),
            J::Bool(b) => s.serialize_bool(*b),
            J::Int(n) => s.serialize_i64(*n),
            // FHIR decimals: integral values print without a fraction (90, not 90.0).
            J::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => s.serialize_i64(*n as i64),
            J::Num(n) => s.serialize_f64(*n),
            J::Str(v) => s.serialize_str(v),
            J::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            J::Obj(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// `{"system": .., "code": .., "display": ..}`
pub fn coding(system: &str, code: &str, display: Option<&str>) -> J {
    J::obj()
        .set("system", system)
        .set("code", code)
        .set_opt("display", display)
}

/// A CodeableConcept with one coding.
pub fn concept(system: &str, code: &str, display: Option<&str>) -> J {
    J::obj().set("coding", vec![coding(system, code, display)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_insertion_order_and_integral_decimals_print_as_integers() {
        let j = J::obj()
            .set("resourceType", "Measure")
            .set("a", 90.0)
            .set("b", 0.5);
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"resourceType":"Measure","a":90,"b":0.5}"#
        );
    }
}
