//! Items and collections: what an expression evaluates to. An item is either a node of the input JSON
//! (borrowed, with its FHIR type when known and its `_name` primitive-extension sibling) or a value the
//! expression computed. Equality, equivalence and ordering per the spec live here.

use std::borrow::Cow;
use std::cmp::Ordering;

use smallvec::SmallVec;

use super::decimal::Decimal;
use super::model::system_type_of;
use super::node::{Node, NodeKind};
use super::temporal::{Temporal, TemporalKind};

/// A node of the input JSON as FHIRPath sees it.
pub struct NodeItem<'a, N> {
    /// The JSON value; `None` for a primitive that only has extensions (`"_birthDate": {...}`).
    pub value: Option<&'a N>,
    /// The `_name` sibling of a primitive: its `id` and `extension`.
    pub meta: Option<&'a N>,
    /// The FHIR type, when declared by the model or evident from the JSON.
    pub ty: Option<&'a str>,
}

impl<N> Clone for NodeItem<'_, N> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<N> Copy for NodeItem<'_, N> {}

/// One item of a collection.
pub enum Item<'a, N> {
    Node(NodeItem<'a, N>),
    Bool(bool),
    Integer(i64),
    Decimal(Decimal),
    String(Cow<'a, str>),
    Temporal(Temporal),
    /// Value and unit (a UCUM code, or a calendar keyword such as `days`).
    Quantity(Decimal, Cow<'a, str>),
}

impl<N> Clone for Item<'_, N> {
    fn clone(&self) -> Self {
        match self {
            Item::Node(n) => Item::Node(*n),
            Item::Bool(b) => Item::Bool(*b),
            Item::Integer(i) => Item::Integer(*i),
            Item::Decimal(d) => Item::Decimal(*d),
            Item::String(s) => Item::String(s.clone()),
            Item::Temporal(t) => Item::Temporal(*t),
            Item::Quantity(d, u) => Item::Quantity(*d, u.clone()),
        }
    }
}

impl<N> std::fmt::Debug for Item<'_, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Node(n) => write!(f, "Node({})", n.ty.unwrap_or("?")),
            Item::Bool(b) => write!(f, "{b}"),
            Item::Integer(i) => write!(f, "{i}"),
            Item::Decimal(d) => write!(f, "{d}"),
            Item::String(s) => write!(f, "'{s}'"),
            Item::Temporal(t) => write!(f, "@{t}"),
            Item::Quantity(d, u) => write!(f, "{d} '{u}'"),
        }
    }
}

/// A primitive value, borrowed from an item, as the operators see it.
#[derive(Debug, Clone)]
pub(crate) enum Prim<'s> {
    Bool(bool),
    Integer(i64),
    Decimal(Decimal),
    String(&'s str),
    Temporal(Temporal),
    Quantity(Decimal, &'s str),
}

fn is_temporal_type(ty: &str) -> Option<TemporalKind> {
    match ty {
        "date" => Some(TemporalKind::Date),
        "dateTime" | "instant" => Some(TemporalKind::DateTime),
        "time" => Some(TemporalKind::Time),
        _ => None,
    }
}

fn is_quantity_type(ty: &str) -> bool {
    matches!(
        ty,
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "Money" | "SimpleQuantity"
    )
}

impl<'a, N: Node> Item<'a, N> {
    pub(crate) fn node(value: &'a N, ty: Option<&'a str>) -> Self {
        Item::Node(NodeItem {
            value: Some(value),
            meta: None,
            ty,
        })
    }

    /// The JSON node, if this item is one and has a value.
    pub fn as_node(&self) -> Option<&'a N> {
        match self {
            Item::Node(n) => n.value,
            _ => None,
        }
    }

    /// The FHIR type of a node item, when known.
    pub fn fhir_type(&self) -> Option<&'a str> {
        match self {
            Item::Node(n) => n.ty,
            _ => None,
        }
    }

    /// The value as a primitive, or `None` for complex nodes and extension-only primitives.
    pub(crate) fn prim(&self) -> Option<Prim<'_>> {
        Some(match self {
            Item::Bool(b) => Prim::Bool(*b),
            Item::Integer(i) => Prim::Integer(*i),
            Item::Decimal(d) => Prim::Decimal(*d),
            Item::String(s) => Prim::String(s),
            Item::Temporal(t) => Prim::Temporal(*t),
            Item::Quantity(d, u) => Prim::Quantity(*d, u),
            Item::Node(n) => {
                let v = n.value?;
                match v.kind() {
                    NodeKind::Bool => Prim::Bool(v.as_bool()?),
                    NodeKind::Number => {
                        let text = v.number_text()?;
                        let integral = !text.contains(['.', 'e', 'E']) && n.ty != Some("decimal");
                        match text.parse::<i64>() {
                            Ok(i) if integral => Prim::Integer(i),
                            _ => Prim::Decimal(Decimal::parse(&text)?),
                        }
                    }
                    NodeKind::String => {
                        let s = v.as_str()?;
                        match n.ty.and_then(is_temporal_type) {
                            Some(TemporalKind::Time) => match Temporal::parse_time(s, false) {
                                Some(t) => Prim::Temporal(t),
                                None => Prim::String(s),
                            },
                            Some(_) => match Temporal::parse_date_time(s, false) {
                                Some(t) => Prim::Temporal(t),
                                None => Prim::String(s),
                            },
                            None => Prim::String(s),
                        }
                    }
                    NodeKind::Object => {
                        let quantity = match n.ty {
                            Some(t) => is_quantity_type(t),
                            None => v.field("value").map(Node::kind) == Some(NodeKind::Number),
                        };
                        if !quantity {
                            return None;
                        }
                        let value = Decimal::parse(&v.field("value")?.number_text()?)?;
                        let unit = v
                            .field("code")
                            .and_then(Node::as_str)
                            .or_else(|| v.field("unit").and_then(Node::as_str))
                            .unwrap_or("1");
                        Prim::Quantity(value, unit)
                    }
                    NodeKind::Null | NodeKind::Array => return None,
                }
            }
        })
    }

    /// The string value, for string functions.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Item::String(s) => Some(s),
            Item::Node(n) => n.value.and_then(Node::as_str),
            _ => None,
        }
    }

    /// Whether the item is a primitive with a value (`hasValue()`).
    pub(crate) fn has_value(&self) -> bool {
        match self {
            Item::Node(n) => n
                .value
                .is_some_and(|v| !matches!(v.kind(), NodeKind::Object | NodeKind::Array)),
            _ => true,
        }
    }

    /// The value converted to a String (`toString()`), when it has a string form.
    pub(crate) fn to_string_value(&self) -> Option<String> {
        Some(match self.prim()? {
            Prim::Bool(b) => b.to_string(),
            Prim::Integer(i) => i.to_string(),
            Prim::Decimal(d) => d.to_string(),
            Prim::String(s) => s.to_owned(),
            Prim::Temporal(t) => t.to_string(),
            Prim::Quantity(d, u) if is_calendar_unit(u) => format!("{d} {u}"),
            Prim::Quantity(d, u) => format!("{d} '{u}'"),
        })
    }

    /// The System type name of the item's value, for `is System.X`.
    pub(crate) fn system_type(&self) -> Option<&'static str> {
        match self {
            Item::Bool(_) => Some("Boolean"),
            Item::Integer(_) => Some("Integer"),
            Item::Decimal(_) => Some("Decimal"),
            Item::String(_) => Some("String"),
            Item::Temporal(t) => Some(match t.kind {
                TemporalKind::Date => "Date",
                TemporalKind::DateTime => "DateTime",
                TemporalKind::Time => "Time",
            }),
            Item::Quantity(..) => Some("Quantity"),
            Item::Node(n) => match n.ty {
                Some(t) => system_type_of(t),
                None => match n.value.map(Node::kind) {
                    Some(NodeKind::Bool) => Some("Boolean"),
                    Some(NodeKind::String) => Some("String"),
                    Some(NodeKind::Number) => match self.prim() {
                        Some(Prim::Integer(_)) => Some("Integer"),
                        _ => Some("Decimal"),
                    },
                    _ => None,
                },
            },
        }
    }
}

/// The result of an evaluation: an ordered collection of items (usually zero or one, kept inline).
pub struct Collection<'a, N>(pub(crate) SmallVec<[Item<'a, N>; 1]>);

impl<N> Clone for Collection<'_, N> {
    fn clone(&self) -> Self {
        Collection(self.0.clone())
    }
}

impl<N> std::fmt::Debug for Collection<'_, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl<N> Default for Collection<'_, N> {
    fn default() -> Self {
        Collection(SmallVec::new())
    }
}

impl<'a, N: Node> Collection<'a, N> {
    pub(crate) fn empty() -> Self {
        Collection(SmallVec::new())
    }
    pub(crate) fn one(item: Item<'a, N>) -> Self {
        let mut v = SmallVec::new();
        v.push(item);
        Collection(v)
    }
    pub(crate) fn bool(b: bool) -> Self {
        Self::one(Item::Bool(b))
    }
    pub(crate) fn push(&mut self, item: Item<'a, N>) {
        self.0.push(item);
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the collection is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The items in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Item<'a, N>> {
        self.0.iter()
    }
    pub(crate) fn as_slice(&self) -> &[Item<'a, N>] {
        &self.0
    }

    /// Singleton evaluation as a boolean, the way invariants are judged: empty -> `None`, a single
    /// boolean -> its value, any other single item -> `true`, several items -> an error.
    pub fn as_boolean(&self) -> Result<Option<bool>, super::EvalError> {
        singleton_bool(&self.0)
    }

    /// The items as display strings (for diagnostics and tests).
    pub fn to_strings(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|i| i.to_string_value().unwrap_or_else(|| format!("{i:?}")))
            .collect()
    }
}

pub(crate) fn singleton_bool<N: Node>(
    items: &[Item<'_, N>],
) -> Result<Option<bool>, super::EvalError> {
    match items {
        [] => Ok(None),
        [one] => Ok(Some(match one.prim() {
            Some(Prim::Bool(b)) => b,
            _ => true,
        })),
        _ => Err(super::EvalError::NotSingleton {
            what: "a boolean",
            count: items.len(),
        }),
    }
}

/// Deep equality of two JSON nodes (objects compared by field set, arrays in order).
pub(crate) fn node_eq<N: Node>(a: &N, b: &N, depth: usize) -> bool {
    if depth > 64 || a.kind() != b.kind() {
        return false;
    }
    match a.kind() {
        NodeKind::Null => true,
        NodeKind::Bool => a.as_bool() == b.as_bool(),
        NodeKind::String => a.as_str() == b.as_str(),
        NodeKind::Number => match (a.number_text(), b.number_text()) {
            (Some(x), Some(y)) => match (Decimal::parse(&x), Decimal::parse(&y)) {
                (Some(x), Some(y)) => x == y,
                _ => x == y,
            },
            _ => false,
        },
        NodeKind::Array => {
            let mut bi = b.elements();
            for x in a.elements() {
                match bi.next() {
                    Some(y) if node_eq(x, y, depth + 1) => {}
                    _ => return false,
                }
            }
            bi.next().is_none()
        }
        NodeKind::Object => {
            let mut n = 0;
            for (k, x) in a.fields() {
                n += 1;
                match b.field(k) {
                    Some(y) if node_eq(x, y, depth + 1) => {}
                    _ => return false,
                }
            }
            n == b.fields().count()
        }
    }
}

/// The calendar-duration keywords of quantity literals (`4 days`), written without quotes.
pub(crate) fn is_calendar_unit(u: &str) -> bool {
    matches!(
        u,
        "year"
            | "years"
            | "month"
            | "months"
            | "week"
            | "weeks"
            | "day"
            | "days"
            | "hour"
            | "hours"
            | "minute"
            | "minutes"
            | "second"
            | "seconds"
            | "millisecond"
            | "milliseconds"
    )
}

/// Unit conversion for comparing quantities: (dimension, factor to the dimension's base unit).
pub(crate) fn unit_factor(unit: &str) -> Option<(&'static str, Decimal)> {
    let (dim, factor) = match unit {
        "ms" | "millisecond" | "milliseconds" => ("s", "0.001"),
        "s" | "second" | "seconds" => ("s", "1"),
        "min" | "minute" | "minutes" => ("s", "60"),
        "h" | "hour" | "hours" => ("s", "3600"),
        "d" | "day" | "days" => ("s", "86400"),
        "wk" | "week" | "weeks" => ("s", "604800"),
        // Calendar months and years are not UCUM's `mo`/`a` (mean lengths): not comparable.
        "mo" => ("mo", "1"),
        "month" | "months" => ("month", "1"),
        "a" => ("a", "1"),
        "year" | "years" => ("year", "1"),
        "ug" => ("g", "0.000001"),
        "mg" => ("g", "0.001"),
        "g" => ("g", "1"),
        "kg" => ("g", "1000"),
        "mm" => ("m", "0.001"),
        "cm" => ("m", "0.01"),
        "m" => ("m", "1"),
        "km" => ("m", "1000"),
        "mL" | "ml" => ("L", "0.001"),
        "dL" => ("L", "0.1"),
        "L" | "l" => ("L", "1"),
        _ => return None,
    };
    Some((dim, Decimal::parse(factor)?))
}

/// Compares two quantities, converting between units of one dimension; `None` if not comparable.
pub(crate) fn quantity_cmp(a: Decimal, ua: &str, b: Decimal, ub: &str) -> Option<Ordering> {
    if ua == ub {
        return Some(a.compare(&b));
    }
    let (da, fa) = unit_factor(ua)?;
    let (db, fb) = unit_factor(ub)?;
    if da != db {
        return None;
    }
    Some(a.checked_mul(&fa)?.compare(&b.checked_mul(&fb)?))
}

fn temporal_from_str(s: &str, like: &Temporal) -> Option<Temporal> {
    match like.kind {
        TemporalKind::Time => Temporal::parse_time(s, false),
        _ => Temporal::parse_date_time(s, false),
    }
}

/// `=` on two items: `Some(bool)`, or `None` (empty) when the answer is unknown (temporal precision).
pub(crate) fn item_eq<N: Node>(a: &Item<'_, N>, b: &Item<'_, N>) -> Option<bool> {
    let (pa, pb) = match (a.prim(), b.prim()) {
        (Some(x), Some(y)) => (x, y),
        (None, None) => {
            return Some(match (a, b) {
                (Item::Node(x), Item::Node(y)) => match (x.value, y.value) {
                    (Some(x), Some(y)) => std::ptr::eq(x, y) || node_eq(x, y, 0),
                    _ => false,
                },
                _ => false,
            });
        }
        _ => return Some(false),
    };
    prim_eq(&pa, &pb)
}

pub(crate) fn prim_eq(a: &Prim<'_>, b: &Prim<'_>) -> Option<bool> {
    use Prim::*;
    Some(match (a, b) {
        (Bool(x), Bool(y)) => x == y,
        (Integer(x), Integer(y)) => x == y,
        (Integer(x), Decimal(y)) | (Decimal(y), Integer(x)) => {
            super::decimal::Decimal::from_i64(*x) == *y
        }
        (Decimal(x), Decimal(y)) => x == y,
        (String(x), String(y)) => x == y,
        // A time is never equal to a date or date-time; otherwise precision may leave it unknown.
        (Temporal(x), Temporal(y))
            if (x.kind == TemporalKind::Time) != (y.kind == TemporalKind::Time) =>
        {
            false
        }
        (Temporal(x), Temporal(y)) => return x.compare(y).map(|o| o == Ordering::Equal),
        (String(s), Temporal(t)) | (Temporal(t), String(s)) => {
            let parsed = temporal_from_str(s, t)?;
            return parsed.compare(t).map(|o| o == Ordering::Equal);
        }
        (Quantity(x, ux), Quantity(y, uy)) => match quantity_cmp(*x, ux, *y, uy) {
            Some(o) => o == Ordering::Equal,
            // Calendar months/years against UCUM `mo`/`a` are unknown; other unit mismatches are
            // different quantities (`185 '[lb_av]' != 185 'kg'`).
            None if calendar_vs_ucum(ux, uy) => return None,
            None => false,
        },
        _ => false,
    })
}

fn calendar_vs_ucum(a: &str, b: &str) -> bool {
    let dim = |u: &str| unit_factor(u).map(|(d, _)| d);
    matches!(
        (dim(a), dim(b)),
        (Some("month"), Some("mo"))
            | (Some("mo"), Some("month"))
            | (Some("year"), Some("a"))
            | (Some("a"), Some("year"))
    )
}

fn normalize_ws_lower(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `~` on two items.
pub(crate) fn item_equiv<N: Node>(a: &Item<'_, N>, b: &Item<'_, N>) -> bool {
    use Prim::*;
    match (a.prim(), b.prim()) {
        (Some(String(x)), Some(String(y))) => normalize_ws_lower(x) == normalize_ws_lower(y),
        (Some(Decimal(x)), Some(Decimal(y))) => {
            let p = x.scale().min(y.scale());
            x.round(p) == y.round(p)
        }
        (Some(Decimal(x)), Some(Integer(y))) | (Some(Integer(y)), Some(Decimal(x))) => {
            x.round(0) == Some(super::decimal::Decimal::from_i64(y))
        }
        (Some(Temporal(x)), Some(Temporal(y))) => x.equivalent(&y),
        (Some(x), Some(y)) => prim_eq(&x, &y).unwrap_or(false),
        (None, None) => item_eq(a, b).unwrap_or(false),
        _ => false,
    }
}

/// Ordering for `<`, `>`, `<=`, `>=`: `Ok(None)` when unknown (precision, units), an error for
/// values that cannot be compared at all.
pub(crate) fn item_cmp<N: Node>(
    a: &Item<'_, N>,
    b: &Item<'_, N>,
) -> Result<Option<Ordering>, super::EvalError> {
    use Prim::*;
    let (Some(pa), Some(pb)) = (a.prim(), b.prim()) else {
        return Err(super::EvalError::Type {
            operation: "comparison",
            message: format!("cannot order {a:?} and {b:?}"),
        });
    };
    Ok(match (&pa, &pb) {
        (Integer(x), Integer(y)) => Some(x.cmp(y)),
        (Integer(x), Decimal(y)) => Some(super::decimal::Decimal::from_i64(*x).compare(y)),
        (Decimal(x), Integer(y)) => Some(x.compare(&super::decimal::Decimal::from_i64(*y))),
        (Decimal(x), Decimal(y)) => Some(x.compare(y)),
        (String(x), String(y)) => {
            // Untyped JSON strings that both read as dates compare as dates (see module docs).
            match (
                super::temporal::Temporal::parse_date_time(x, false),
                super::temporal::Temporal::parse_date_time(y, false),
            ) {
                (Some(tx), Some(ty)) if a.fhir_type().is_none() && b.fhir_type().is_none() => {
                    tx.compare(&ty)
                }
                _ => Some(x.cmp(y)),
            }
        }
        (Temporal(x), Temporal(y)) => x.compare(y),
        (String(s), Temporal(t)) => temporal_from_str(s, t).and_then(|p| p.compare(t)),
        (Temporal(t), String(s)) => temporal_from_str(s, t).and_then(|p| t.compare(&p)),
        (Quantity(x, ux), Quantity(y, uy)) => quantity_cmp(*x, ux, *y, uy),
        _ => {
            return Err(super::EvalError::Type {
                operation: "comparison",
                message: format!("cannot order {pa:?} and {pb:?}"),
            });
        }
    })
}
