//! Native implementations of the invariants that run on nearly every group, stratifier, stratum
//! and count of a PQOM report (and `mrp-2`, which walks every stratum). Through the general
//! FHIRPath evaluator these cost ~85% of validating the reference report; natively they are a few
//! direct field look-ups per node.
//!
//! An invariant is native only when its expression text is exactly one listed here ([`lookup`]);
//! any other text, including a future edit of the PQOM profile, runs through FHIRPath as before.
//! Each native check answers `Some(result)` only for the JSON shapes it fully understands (objects
//! and arrays of objects where FHIR has elements, strings and integers where it has primitives,
//! no `_name` primitive companions, no duplicate or choice-like keys); for anything else it
//! answers `None` and the caller evaluates the FHIRPath expression, which stays the authority.
//! The tests (`native_tests.rs`) check that both agree on the reference report and on many broken
//! copies, and that the profile's texts are the ones listed here.

use smallvec::SmallVec;
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Object, Value};

const MP: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const IND: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-indicator";
const STRAT: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-stratifier";
const POPS: [&str; 3] = ["numerator", "denominator", "initial-population"];
const N: usize = 0;
const D: usize = 1;

/// Stratifier code -> the code system every stratum value must use (`pqom-3`).
const STRATUM_SYSTEMS: [(&str, &str); 9] = [
    (
        "ethnic-category",
        "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland",
    ),
    (
        "imd-decile",
        "https://fhir.pqom-gateway.org/CodeSystem/imd-decile",
    ),
    (
        "imd-quintile",
        "https://fhir.pqom-gateway.org/CodeSystem/imd-quintile",
    ),
    (
        "staff-group",
        "https://fhir.pqom-gateway.org/CodeSystem/pqom-staff-group",
    ),
    (
        "insight-category",
        "https://fhir.pqom-gateway.org/CodeSystem/pqom-insight-category",
    ),
    (
        "harm-level",
        "https://fhir.pqom-gateway.org/CodeSystem/pqom-harm-level",
    ),
    (
        "feedback-source",
        "https://fhir.pqom-gateway.org/CodeSystem/pqom-feedback-source",
    ),
    (
        "external-body",
        "https://fhir.pqom-gateway.org/CodeSystem/pqom-external-body",
    ),
    (
        "mis-safety-action",
        "https://fhir.pqom-gateway.org/CodeSystem/pqom-mis-safety-action",
    ),
];

/// Stratifier code -> number of categories that makes a stratifier complete (`pqom-5`).
const COMPLETE: [(&str, usize); 3] = [
    ("ethnic-category", 18),
    ("imd-decile", 13),
    ("imd-quintile", 8),
];

/// Which native check an invariant uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Native {
    /// `pqom-1`: numerator <= denominator in a group (unless a ratio indicator).
    GroupNumLeDen,
    /// `pqom-2`: numerator <= denominator in every stratum of a group.
    StrataNumLeDen,
    /// `pqom-3`: stratum codings use the system of their stratifier.
    StratumSystems,
    /// `pqom-4`: strata add up to no more than the group.
    StrataSumLe,
    /// `pqom-5`: complete stratifiers add up to exactly the group.
    StrataSumEq,
    /// `pqom-9`, `pqom-13`: numerator and denominator together, or an initial population.
    PopulationsPaired,
    /// `pqom-6`, `pqom-8`, `pqom-10`: codes distinct along a path of three elements.
    DistinctCodes(&'static [&'static str]),
    /// `mrp-2`: every stratum has a value or components, not both.
    StratumValueXorComponent,
    /// `pqom-11`, `pqom-12`: `$this >= 0` on an integer.
    NonNegative,
}

fn has(system: &str, code: &str) -> String {
    format!("code.coding.exists(system = '{system}' and code = '{code}')")
}

fn pop(code: &str) -> String {
    format!("population.where({})", has(MP, code))
}

fn num_le_den() -> String {
    let (n, d) = (pop(POPS[N]), pop(POPS[D]));
    format!(
        "({n}.count.exists() and {d}.count.exists()) implies {n}.count.first() <= {d}.count.first()"
    )
}

fn sums(op: &str) -> String {
    POPS.iter()
        .map(|c| {
            let p = pop(c);
            format!(
                "(stratum.{p}.count.aggregate($this + $total, 0) {op} %context.{p}.count.first() or %context.{p}.count.empty())"
            )
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The expression texts with a native check, built from the same pieces as the profile generator
/// writes them.
fn table() -> &'static [(String, Native)] {
    static T: std::sync::OnceLock<Vec<(String, Native)>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let ratio = has(IND, "midwife-staffing-fill-rate");
        let complete = COMPLETE
            .iter()
            .map(|(k, n)| {
                format!(
                    "({} and stratum.value.coding.code.distinct().count() = {n})",
                    has(STRAT, k)
                )
            })
            .collect::<Vec<_>>()
            .join(" or ");
        let systems = STRATUM_SYSTEMS
            .iter()
            .map(|(k, s)| {
                format!(
                    "({} implies stratum.value.coding.all(system = '{s}'))",
                    has(STRAT, k)
                )
            })
            .collect::<Vec<_>>()
            .join(" and ");
        let (n, d, ip) = (pop(POPS[0]), pop(POPS[1]), pop(POPS[2]));
        vec![
            (
                format!("{ratio} or ({})", num_le_den()),
                Native::GroupNumLeDen,
            ),
            (
                format!("{ratio} or stratifier.stratum.all({})", num_le_den()),
                Native::StrataNumLeDen,
            ),
            (systems, Native::StratumSystems),
            (
                format!(
                    "stratifier.where({}.not()).all({})",
                    has(STRAT, "insight-category"),
                    sums("<=")
                ),
                Native::StrataSumLe,
            ),
            (
                format!("stratifier.where({complete}).all({})", sums("=")),
                Native::StrataSumEq,
            ),
            (
                format!("({n}.exists() = {d}.exists()) and ({n}.exists() or {ip}.exists())"),
                Native::PopulationsPaired,
            ),
            (
                "group.code.coding.code.isDistinct()".into(),
                Native::DistinctCodes(&["group", "code", "coding", "code"]),
            ),
            (
                "stratifier.code.coding.code.isDistinct()".into(),
                Native::DistinctCodes(&["stratifier", "code", "coding", "code"]),
            ),
            (
                "stratum.value.coding.code.isDistinct()".into(),
                Native::DistinctCodes(&["stratum", "value", "coding", "code"]),
            ),
            (
                "group.stratifier.stratum.all(value.exists() xor component.exists())".into(),
                Native::StratumValueXorComponent,
            ),
            ("$this >= 0".into(), Native::NonNegative),
        ]
    })
}

/// The native check for this exact expression text, if there is one.
pub(crate) fn lookup(expression: &str) -> Option<Native> {
    table()
        .iter()
        .find(|(text, _)| text == expression)
        .map(|&(_, n)| n)
}

impl Native {
    /// The invariant on `focus`: `Some(holds)`, or `None` when the JSON has a shape this check
    /// leaves to the FHIRPath evaluator.
    pub(crate) fn eval(self, focus: &Value, cache: &mut Cache) -> Option<bool> {
        match self {
            Native::GroupNumLeDen => {
                let g = cache.group(focus)?;
                Some(g.ratio || num_le_den_holds(&g.pops))
            }
            Native::StrataNumLeDen => {
                let g = cache.group(focus)?;
                Some(g.ratio || g.strata_num_le_den)
            }
            Native::StratumSystems => {
                // Which stratifier codes are present, then one pass over the stratum codings.
                let codes = system_codes(focus, STRAT)?;
                let mut required: SmallVec<[&str; 2]> = SmallVec::new();
                for (k, sys) in STRATUM_SYSTEMS {
                    if codes.contains(&k) {
                        required.push(sys);
                    }
                }
                let all = stratum_codings(focus, &mut |c| {
                    let s = str_leaf(c, "system")?;
                    Some(required.iter().all(|r| s == Some(*r)))
                })?;
                Some(all)
            }
            Native::StrataSumLe | Native::StrataSumEq => {
                let g = cache.group(focus)?;
                let mut all = true;
                for sf in &g.stratifiers {
                    let selected = if self == Native::StrataSumLe {
                        !sf.insight
                    } else {
                        sf.complete
                    };
                    if selected {
                        for k in 0..3 {
                            all &= match g.pops.first[k] {
                                None => true,
                                Some(t) if self == Native::StrataSumLe => sf.sum[k] <= t,
                                Some(t) => sf.sum[k] == t,
                            };
                        }
                    }
                }
                Some(all)
            }
            Native::PopulationsPaired => {
                let p = pops(focus)?;
                let [n, d, ip] = p.exists;
                Some((n == d) && (n || ip))
            }
            Native::DistinctCodes(path) => {
                let (distinct, total) = distinct_codes(focus, path)?;
                Some(distinct == total)
            }
            Native::StratumValueXorComponent => {
                let mut all = true;
                each_obj(focus, "group", &mut |g| {
                    group_strata(g, &mut |st| {
                        let o = st.as_object()?;
                        let value = match field(o, "value")? {
                            None => false,
                            Some(v) if v.is_object() => true,
                            Some(_) => return None,
                        };
                        let component = match field(o, "component")? {
                            None => false,
                            Some(v) => match v.as_array() {
                                Some(a) => {
                                    if !a.iter().all(|x| x.is_object()) {
                                        return None;
                                    }
                                    !a.is_empty()
                                }
                                None if v.is_object() => true,
                                None => return None,
                            },
                        };
                        all &= value != component;
                        Some(())
                    })
                })?;
                Some(all)
            }
            Native::NonNegative => Some(integer(focus)? >= 0),
        }
    }
}

/// What the group-level checks (`pqom-1`, `-2`, `-4`, `-5`) read, computed in one pass over a
/// group's strata and shared by them. When any part of the group has a shape left to FHIRPath,
/// there is no summary and all four checks fall back (slower, never wrong).
struct GroupSummary {
    /// The group is the ratio indicator (exempt from numerator <= denominator).
    ratio: bool,
    pops: Pops,
    /// `pqom-2`'s condition holds in every stratum.
    strata_num_le_den: bool,
    stratifiers: SmallVec<[StratifierSummary; 4]>,
}

struct StratifierSummary {
    /// Coded `insight-category` (exempt from `pqom-4`).
    insight: bool,
    /// Lists every category of its system (`pqom-5` applies).
    complete: bool,
    /// Per population code, the sum of the strata's counts.
    sum: [i64; 3],
}

fn group_summary(group: &Value) -> Option<GroupSummary> {
    let mut g = GroupSummary {
        ratio: has_coding(group, IND, "midwife-staffing-fill-rate")?,
        pops: pops(group)?,
        strata_num_le_den: true,
        stratifiers: SmallVec::new(),
    };
    each_obj(group, "stratifier", &mut |sf| {
        let codes = system_codes(sf, STRAT)?;
        let distinct = distinct_codes(sf, &["stratum", "value", "coding", "code"])?.0;
        let mut sum = [0i64; 3];
        each_obj(sf, "stratum", &mut |st| {
            let p = pops(st)?;
            g.strata_num_le_den &= num_le_den_holds(&p);
            for (total, add) in sum.iter_mut().zip(p.sum) {
                *total = total.checked_add(add)?;
            }
            Some(())
        })?;
        g.stratifiers.push(StratifierSummary {
            insight: codes.contains(&"insight-category"),
            complete: COMPLETE
                .iter()
                .any(|(k, n)| codes.contains(k) && distinct == *n),
            sum,
        });
        Some(())
    })?;
    Some(g)
}

/// The last group summary, keyed by the group's address. One cache per validation run: within
/// one parsed document an address names one node.
#[derive(Default)]
pub(crate) struct Cache {
    key: usize,
    group: Option<Option<GroupSummary>>,
}

impl Cache {
    fn group(&mut self, focus: &Value) -> Option<&GroupSummary> {
        let key = focus as *const Value as usize;
        if self.key != key || self.group.is_none() {
            self.key = key;
            self.group = Some(group_summary(focus));
        }
        self.group.as_ref().and_then(Option::as_ref)
    }
}

/// `o.name`: `Some(None)` when absent. `None` (not handled) for a duplicate key, a `_name`
/// companion, or a key that extends the name (`valueQuantity` for `value`), which the evaluator
/// would read as a choice element.
fn field<'j>(o: &'j Object, name: &str) -> Option<Option<&'j Value>> {
    let mut found = None;
    let name = name.as_bytes();
    for (k, v) in o.iter() {
        let k = k.as_bytes();
        if k.len() == name.len() {
            if k == name {
                if found.is_some() {
                    return None;
                }
                found = Some(v);
            }
        } else if k.len() > name.len() {
            let rest = if k[0] == b'_' { &k[1..] } else { k };
            if rest.starts_with(name) {
                return None;
            }
        }
    }
    Some(found)
}

/// Calls `f` on each object `obj.name` reaches (FHIRPath flattens arrays). Anything but an
/// object or an array of objects there is not handled.
fn each_obj<'j>(
    obj: &'j Value,
    name: &str,
    f: &mut impl FnMut(&'j Value) -> Option<()>,
) -> Option<()> {
    let Some(o) = obj.as_object() else {
        // A primitive focus has no children; an array or null is not handled.
        return (!obj.is_array() && !obj.is_null()).then_some(());
    };
    match field(o, name)? {
        None => Some(()),
        Some(v) => {
            if let Some(a) = v.as_array() {
                for x in a.iter() {
                    if !x.is_object() {
                        return None;
                    }
                    f(x)?;
                }
                Some(())
            } else if v.is_object() {
                f(v)
            } else {
                None
            }
        }
    }
}

/// A string primitive `obj.name`: `Some(None)` when absent; other JSON there is not handled.
fn str_leaf<'j>(obj: &'j Value, name: &str) -> Option<Option<&'j str>> {
    let Some(o) = obj.as_object() else {
        return (!obj.is_array() && !obj.is_null()).then_some(None);
    };
    match field(o, name)? {
        None => Some(None),
        Some(v) => v.as_str().map(Some),
    }
}

/// `system` and `code` of a Coding in one pass over its keys, with the rules of [`field`] and
/// [`str_leaf`].
fn system_and_code<'j>(coding: &'j Value) -> Option<(Option<&'j str>, Option<&'j str>)> {
    let Some(o) = coding.as_object() else {
        return (!coding.is_array() && !coding.is_null()).then_some((None, None));
    };
    let (mut system, mut code): (Option<&'j Value>, Option<&'j Value>) = (None, None);
    for (k, v) in o.iter() {
        let slot = match k {
            "system" => &mut system,
            "code" => &mut code,
            _ => {
                let rest = k.strip_prefix('_').unwrap_or(k);
                if (rest.len() > 4 && rest.starts_with("code"))
                    || (rest.len() > 6 && rest.starts_with("system"))
                    || rest == "code"
                    || rest == "system"
                {
                    return None;
                }
                continue;
            }
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(v);
    }
    fn text(v: Option<&Value>) -> Option<Option<&str>> {
        match v {
            None => Some(None),
            Some(v) => v.as_str().map(Some),
        }
    }
    Some((text(system)?, text(code)?))
}

/// A JSON number the evaluator reads as an Integer (no fraction or exponent, fits in i64).
fn integer(v: &Value) -> Option<i64> {
    let raw = v.as_raw_number()?;
    let text = raw.as_str();
    if text.contains(['.', 'e', 'E']) {
        return None;
    }
    text.parse::<i64>().ok()
}

/// `code.coding.exists(system = 'system' and code = 'code')` on `obj`.
fn has_coding(obj: &Value, system: &str, code: &str) -> Option<bool> {
    let mut found = false;
    each_obj(obj, "code", &mut |c| {
        each_obj(c, "coding", &mut |cd| {
            let (s, k) = system_and_code(cd)?;
            found |= s == Some(system) && k == Some(code);
            Some(())
        })
    })?;
    Some(found)
}

/// The codes of `obj.code.coding` whose system is `system`, in order (so
/// `code.coding.exists(system = S and code = C)` is `contains(C)`).
fn system_codes<'j>(obj: &'j Value, system: &str) -> Option<SmallVec<[&'j str; 2]>> {
    let mut out = SmallVec::new();
    each_obj(obj, "code", &mut |c| {
        each_obj(c, "coding", &mut |cd| {
            let (s, k) = system_and_code(cd)?;
            if s == Some(system)
                && let Some(k) = k
            {
                out.push(k);
            }
            Some(())
        })
    })?;
    Some(out)
}

/// Calls `f` on each stratum of a group (`stratifier.stratum`).
fn group_strata<'j>(group: &'j Value, f: &mut impl FnMut(&'j Value) -> Option<()>) -> Option<()> {
    each_obj(group, "stratifier", &mut |sf| each_obj(sf, "stratum", f))
}

/// `stratum.value.coding.all(f)` on a stratifier: whether `f` holds for every coding.
fn stratum_codings(stratifier: &Value, f: &mut impl FnMut(&Value) -> Option<bool>) -> Option<bool> {
    let mut all = true;
    each_obj(stratifier, "stratum", &mut |st| {
        each_obj(st, "value", &mut |v| {
            each_obj(v, "coding", &mut |c| {
                all &= f(c)?;
                Some(())
            })
        })
    })?;
    Some(all)
}

/// The strings at the end of a path of elements: (distinct count, total count).
fn distinct_codes(obj: &Value, path: &[&str]) -> Option<(usize, usize)> {
    let mut codes: SmallVec<[&str; 32]> = SmallVec::new();
    fn go<'j>(v: &'j Value, path: &[&str], out: &mut SmallVec<[&'j str; 32]>) -> Option<()> {
        match path {
            [] => Some(()),
            [leaf] => {
                if let Some(s) = str_leaf(v, leaf)? {
                    out.push(s);
                }
                Some(())
            }
            [first, rest @ ..] => each_obj(v, first, &mut |x| go(x, rest, out)),
        }
    }
    go(obj, path, &mut codes)?;
    let total = codes.len();
    codes.sort_unstable();
    codes.dedup();
    Some((codes.len(), total))
}

/// Per population code (numerator, denominator, initial-population): whether a population has it,
/// the first `count` among those populations, and the sum of their counts.
struct Pops {
    exists: [bool; 3],
    first: [Option<i64>; 3],
    sum: [i64; 3],
}

fn pops(obj: &Value) -> Option<Pops> {
    let mut p = Pops {
        exists: [false; 3],
        first: [None; 3],
        sum: [0; 3],
    };
    each_obj(obj, "population", &mut |pop| {
        let count = match field(pop.as_object()?, "count")? {
            None => None,
            Some(c) => Some(integer(c)?),
        };
        let codes = system_codes(pop, MP)?;
        for (k, code) in POPS.iter().enumerate() {
            if codes.contains(code) {
                p.exists[k] = true;
                if let Some(c) = count {
                    p.first[k].get_or_insert(c);
                    p.sum[k] = p.sum[k].checked_add(c)?;
                }
            }
        }
        Some(())
    })?;
    Some(p)
}

/// `(N.count.exists() and D.count.exists()) implies N.count.first() <= D.count.first()`.
fn num_le_den_holds(p: &Pops) -> bool {
    match (p.first[N], p.first[D]) {
        (Some(n), Some(d)) => n <= d,
        _ => true,
    }
}

#[cfg(test)]
#[path = "native_tests.rs"]
mod tests;
