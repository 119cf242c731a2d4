//! The view of a JSON tree the evaluator needs, implemented for `sonic_rs::Value` (what the validator
//! hands it: values parsed from the text received) and `serde_json::Value`. Field order is whatever the tree keeps (serde_json without
//! `preserve_order` sorts by name; FHIRPath leaves `children()` order undefined anyway). Read-only and allocation-free except for number text, which sonic-rs
//! only keeps verbatim when parsed with `use_rawnumber`.

use std::borrow::Cow;

/// The JSON kind of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// A JSON value the FHIRPath evaluator can walk.
pub trait Node {
    /// The JSON kind of this value.
    fn kind(&self) -> NodeKind;
    /// Field `name` of an object; `None` for absent fields and non-objects.
    fn field(&self, name: &str) -> Option<&Self>;
    /// The fields of an object in document order; empty for non-objects.
    fn fields(&self) -> impl Iterator<Item = (&str, &Self)>;
    /// The elements of an array; empty for non-arrays.
    fn elements(&self) -> impl Iterator<Item = &Self>;
    /// The text of a string.
    fn as_str(&self) -> Option<&str>;
    /// The value of a boolean.
    fn as_bool(&self) -> Option<bool>;
    /// The text of a number, as written when the parser kept it (so `1.50` keeps its precision).
    fn number_text(&self) -> Option<Cow<'_, str>>;
}

impl Node for serde_json::Value {
    #[inline]
    fn kind(&self) -> NodeKind {
        match self {
            serde_json::Value::Null => NodeKind::Null,
            serde_json::Value::Bool(_) => NodeKind::Bool,
            serde_json::Value::Number(_) => NodeKind::Number,
            serde_json::Value::String(_) => NodeKind::String,
            serde_json::Value::Array(_) => NodeKind::Array,
            serde_json::Value::Object(_) => NodeKind::Object,
        }
    }
    #[inline]
    fn field(&self, name: &str) -> Option<&Self> {
        match self {
            serde_json::Value::Object(map) => map.get(name),
            _ => None,
        }
    }
    fn fields(&self) -> impl Iterator<Item = (&str, &Self)> {
        let map = match self {
            serde_json::Value::Object(map) => Some(map),
            _ => None,
        };
        map.into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }
    fn elements(&self) -> impl Iterator<Item = &Self> {
        match self {
            serde_json::Value::Array(items) => items.iter(),
            _ => [].iter(),
        }
    }
    #[inline]
    fn as_str(&self) -> Option<&str> {
        self.as_str()
    }
    #[inline]
    fn as_bool(&self) -> Option<bool> {
        self.as_bool()
    }
    fn number_text(&self) -> Option<Cow<'_, str>> {
        match self {
            serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }
}

impl Node for sonic_rs::Value {
    #[inline]
    fn kind(&self) -> NodeKind {
        use sonic_rs::{JsonType, JsonValueTrait};
        match self.get_type() {
            JsonType::Null => NodeKind::Null,
            JsonType::Boolean => NodeKind::Bool,
            JsonType::Number => NodeKind::Number,
            JsonType::String => NodeKind::String,
            JsonType::Array => NodeKind::Array,
            JsonType::Object => NodeKind::Object,
        }
    }
    #[inline]
    fn field(&self, name: &str) -> Option<&Self> {
        use sonic_rs::JsonContainerTrait;
        self.as_object().and_then(|o| o.get(&name))
    }
    fn fields(&self) -> impl Iterator<Item = (&str, &Self)> {
        use sonic_rs::JsonContainerTrait;
        self.as_object().into_iter().flat_map(|o| o.iter())
    }
    fn elements(&self) -> impl Iterator<Item = &Self> {
        use sonic_rs::JsonContainerTrait;
        match self.as_array() {
            Some(items) => items.iter(),
            None => [].iter(),
        }
    }
    #[inline]
    fn as_str(&self) -> Option<&str> {
        sonic_rs::JsonValueTrait::as_str(self)
    }
    #[inline]
    fn as_bool(&self) -> Option<bool> {
        sonic_rs::JsonValueTrait::as_bool(self)
    }
    fn number_text(&self) -> Option<Cow<'_, str>> {
        use sonic_rs::JsonValueTrait;
        if let Some(raw) = self.as_raw_number() {
            return Some(Cow::Owned(raw.as_str().to_owned()));
        }
        self.as_number().map(|n| Cow::Owned(n.to_string()))
    }
}
