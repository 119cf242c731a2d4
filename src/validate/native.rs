//! Native implementations of the invariants that run on nearly every group, stratifier, stratum
//! and count of a PQOM report (and `mrp-2`, which walks every stratum). Through the general
//! FHIRPath evaluator these cost ~85% of validating the reference report; natively they read the
//! parse tree ([`super::tree`]) once per node: what a stratum, stratifier or group yields is kept
//! for the run ([`Cache`]) and shared by every check that needs it.
//!
//! An invariant is native only when its expression text is exactly one listed here ([`lookup`]);
//! any other text, including a future edit of the PQOM profile, runs through FHIRPath as before.
//! Each native check answers `Some(result)` only for the JSON shapes it fully understands (objects
//! and arrays of objects where FHIR has elements, strings and integers where it has primitives,
//! no `_name` primitive companions, no duplicate or choice-like keys); for anything else it
//! answers `None` and the caller evaluates the FHIRPath expression, which stays the authority.
//! The tests (`native_tests.rs`) check that both agree on the reference report and on many broken
//! copies, and that the profile's texts are the ones listed here.

use super::memo::{FastMap, Ids};
use super::tree::{N, bytes_eq};
use smallvec::SmallVec;

const MP: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const IND: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-indicator";
const STRAT: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-stratifier";
const EVENT: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-message-event";
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
    /// `pqom-60`: a submission message that starts with a MessageHeader carries the PQOM
    /// submission event (through FHIRPath its focus is the whole Bundle, a second parse).
    MessageEvent,
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
                Native::DistinctCodes(STRATUM_CODES),
            ),
            (
                "group.stratifier.stratum.all(value.exists() xor component.exists())".into(),
                Native::StratumValueXorComponent,
            ),
            ("$this >= 0".into(), Native::NonNegative),
            (
                format!(
                    "entry.first().resource.is(MessageHeader) implies entry.first().resource.event.where(system = '{EVENT}').code = 'pqom-submission'"
                ),
                Native::MessageEvent,
            ),
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
    // Not inlined, so that profiles show what the native checks cost.
    #[inline(never)]
    pub(crate) fn eval(self, focus: N<'_>, cache: &mut Cache, ids: Ids<'_>) -> Option<bool> {
        match self {
            Native::GroupNumLeDen => {
                let g = cache.group(focus, ids)?;
                Some(g.ratio || g.num_le_den)
            }
            Native::StrataNumLeDen => {
                let g = cache.group(focus, ids)?;
                Some(g.ratio || g.strata_num_le_den)
            }
            Native::StratumSystems => cache.stratifier(focus, ids)?.systems,
            Native::StrataSumLe => Some(cache.group(focus, ids)?.sum_le),
            Native::StrataSumEq => Some(cache.group(focus, ids)?.sum_eq),
            Native::PopulationsPaired => {
                let [n, d, ip] = cache.populations(focus, ids)?;
                Some((n == d) && (n || ip))
            }
            Native::DistinctCodes(path) => {
                let (distinct, total) = if path == STRATUM_CODES {
                    cache.stratifier(focus, ids)?.distinct?
                } else {
                    distinct_codes(focus, path)?
                };
                Some(distinct == total)
            }
            Native::StratumValueXorComponent => {
                let mut all = true;
                let [groups] = fields_of(focus, ["group"])?;
                // Each stratifier's summary has its strata's answer.
                objs(groups?, &mut |g| {
                    each(g, "stratifier", &mut |sf| {
                        all &= cache.stratifier_obj(sf, ids).xor?;
                        Some(())
                    })
                })?;
                Some(all)
            }
            Native::NonNegative => cache.non_negative(focus),
            Native::MessageEvent => message_event(focus),
        }
    }
}

/// `pqom-60` (on the submission Bundle): a message that starts with a MessageHeader carries the
/// PQOM submission event. Through FHIRPath its focus is the whole Bundle, a second parse of the
/// submission.
fn message_event(bundle: N<'_>) -> Option<bool> {
    if !bundle.is_object() {
        // A primitive has no entries; an array or null is not handled.
        return (!bundle.is_array() && !bundle.is_null()).then_some(true);
    }
    let [entry] = fields(bundle, ["entry"]);
    let first = match entry? {
        None => return Some(true),
        Some(e) if e.is_array() => match e.items().next() {
            None => return Some(true),
            Some(f) if f.is_object() => f,
            Some(_) => return None,
        },
        Some(_) => return None,
    };
    let [resource] = fields(first, ["resource"]);
    let r = match resource? {
        None => return Some(true),
        Some(r) if r.is_object() => r,
        Some(_) => return None,
    };
    let [rt, coding, uri] = fields(r, ["resourceType", "eventCoding", "eventUri"]);
    if rt??.as_str()? != "MessageHeader" {
        return Some(true);
    }
    let coding = match (coding?, uri?) {
        (None, None) => return Some(true),
        (Some(c), None) if c.is_object() => c,
        _ => return None,
    };
    let [system, code] = fields(coding, ["system", "code"]);
    let system = match system? {
        None => return Some(true),
        Some(s) => s.as_str()?,
    };
    if system != EVENT {
        return Some(true);
    }
    match code? {
        None => Some(true),
        Some(c) => Some(c.as_str()? == "pqom-submission"),
    }
}

/// The path of `pqom-10` (on a stratifier), answered from the stratifier's summary.
const STRATUM_CODES: &[&str] = &["stratum", "value", "coding", "code"];

/// Work shared by the checks on one validation run, keyed by node id: an id names one node of
/// one parsed document, so the cache must not outlive the run (it lives in
/// `walk::Run`). Every entry is a function of its node's JSON alone, so it does not matter which
/// check, or which node order, computes it first: the walk asks about strata (`pqom-13`) before
/// their stratifier (`pqom-3`, `pqom-10`), group (`pqom-1`, `-2`, `-4`, `-5`, `-9`) and report
/// (`mrp-2`), and each level reuses the level below instead of reading it again. A stratum is read
/// once ([`NodeInfo`]: its populations, `value`/`component`, and its `value.coding` summary), a
/// stratifier once from its strata's summaries ([`StratifierInfo`]).
#[derive(Default)]
pub(crate) struct Cache {
    /// Per node id: [`EMPTY`], where `infos` holds the node's [`NodeInfo`], or (with [`COUNT`])
    /// the value of a count. Ids are dense (positions in the document), so a vector is cheaper
    /// than a hash table for the few hundred strata and thousand counts of a report.
    slots: Vec<u32>,
    infos: Vec<NodeInfo>,
    /// Answers remembered by text identity ([`Cache::remembered`]): which populations a
    /// `population.code` names (a report repeats three codes in every stratum), the
    /// [`Codings`] of a stratum's `value` (the same categories in every group), and a whole
    /// population item's answer (the same small populations across strata).
    pop_codes: FastMap<u32, Option<[bool; 3]>>,
    value_ids: FastMap<u32, Option<Codings>>,
    pop_ids: FastMap<u32, PopAnswer>,
    stratifiers: FastMap<u32, StratifierInfo>,
    groups: FastMap<u32, Option<GroupAnswers>>,
}

impl Cache {
    /// A cache for a document of `n` JSON values (node ids below `n`).
    pub(crate) fn for_nodes(n: usize) -> Self {
        Cache {
            slots: vec![EMPTY; n],
            ..Cache::default()
        }
    }

    /// Which populations any focus has (`pqom-9`, `pqom-13`): `None` for an array or null, or
    /// populations of a shape left to FHIRPath.
    fn populations(&mut self, v: N<'_>, ids: Ids<'_>) -> Option<[bool; 3]> {
        if v.is_object() {
            return self.node_obj(v, ids).pops.map(|p| p.exists);
        }
        // A primitive has no children.
        (!v.is_array() && !v.is_null()).then_some([false; 3])
    }

    fn node_obj(&mut self, o: N<'_>, ids: Ids<'_>) -> &NodeInfo {
        let id = o.id() as usize;
        match self.slots.get(id) {
            Some(&slot) if slot < COUNT => &self.infos[slot as usize],
            _ => {
                let info = node_info(fields(o, ["value", "component", "population"]), self, ids);
                let slot = self.infos.len() as u32;
                if self.infos.capacity() == 0 {
                    // A PQOM report has a few hundred strata and groups.
                    self.infos.reserve(512);
                }
                self.infos.push(info);
                *self.slot(id) = slot;
                &self.infos[slot as usize]
            }
        }
    }

    /// The slot of node `id`, growing the table to hold it.
    fn slot(&mut self, id: usize) -> &mut u32 {
        if id >= self.slots.len() {
            // Doubling: a report's ids reach the number of its JSON values.
            let len = (id + 1).max(2 * self.slots.len()).max(1024);
            self.slots.resize(len, EMPTY);
        }
        &mut self.slots[id]
    }

    /// `$this >= 0` on a count (`pqom-11`, `pqom-12`). The walk checks a count before its
    /// stratum, so the value is remembered for [`Cache::count`].
    fn non_negative(&mut self, v: N<'_>) -> Option<bool> {
        let n = integer(v)?;
        if (0..i64::from(!COUNT)).contains(&n) {
            *self.slot(v.id() as usize) = COUNT | n as u32;
        }
        Some(n >= 0)
    }

    /// A count as an integer ([`integer`]), remembered or read.
    fn count(&self, v: N<'_>) -> Option<i64> {
        match self.slots.get(v.id() as usize) {
            Some(&slot) if slot != EMPTY && slot & COUNT != 0 => Some(i64::from(slot & !COUNT)),
            _ => integer(v),
        }
    }

    /// `compute`'s answer for `n`, which depends only on `n`'s text: remembered in `table` by
    /// the text identity the walk gave `n` ([`Ids`]), read afresh for a node without one (the
    /// walk gives every node these tables are asked about an identity before the checks that
    /// ask). Bounded: past [`REMEMBERED`] distinct texts, the rest are read every time.
    fn remembered<T: Copy>(
        &mut self,
        table: fn(&mut Cache) -> &mut FastMap<u32, T>,
        n: N<'_>,
        ids: Ids<'_>,
        compute: impl FnOnce(&mut Cache) -> T,
    ) -> T {
        let Some(id) = ids.of(n) else {
            return compute(self);
        };
        if let Some(&r) = table(self).get(&id) {
            return r;
        }
        let r = compute(self);
        let t = table(self);
        if t.len() < REMEMBERED {
            t.insert(id, r);
        }
        r
    }

    /// [`Codings`] of a node's `value` field.
    fn value_codings(&mut self, value: Field<'_>, ids: Ids<'_>) -> Option<Codings> {
        match value {
            Some(Some(v)) if v.is_object() => {
                self.remembered(|c| &mut c.value_ids, v, ids, |_| value_codings(value))
            }
            _ => value_codings(value),
        }
    }

    /// Which populations one `population` item names, and its count (`None`: a shape left to
    /// FHIRPath).
    fn population(&mut self, pop: N<'_>, ids: Ids<'_>) -> PopAnswer {
        self.remembered(
            |c| &mut c.pop_ids,
            pop,
            ids,
            |cache| {
                let [code, count] = fields(pop, ["code", "count"]);
                let count = match count? {
                    None => None,
                    Some(c) => Some(cache.count(c)?),
                };
                let has = match code? {
                    Some(c) => cache.remembered(|c| &mut c.pop_codes, c, ids, |_| pop_code(c))?,
                    None => [false; 3],
                };
                Some((has, count))
            },
        )
    }

    /// [`StratifierInfo`] of any focus: `None` for an array or null (not handled).
    fn stratifier(&mut self, v: N<'_>, ids: Ids<'_>) -> Option<StratifierInfo> {
        match v.is_object() {
            true => Some(self.stratifier_obj(v, ids)),
            false => (!v.is_array() && !v.is_null())
                .then(|| self.stratifier_info([Some(None); 2], None, ids)),
        }
    }

    fn stratifier_obj(&mut self, o: N<'_>, ids: Ids<'_>) -> StratifierInfo {
        if let Some(s) = self.stratifiers.get(&o.id()) {
            return *s;
        }
        let s = self.stratifier_info([Some(None); 2], Some(o), ids);
        self.stratifiers.insert(o.id(), s);
        s
    }

    fn group(&mut self, v: N<'_>, ids: Ids<'_>) -> Option<GroupAnswers> {
        match v.is_object() {
            true => {
                let o = v;
                if let Some(a) = self.groups.get(&o.id()) {
                    return *a;
                }
                let a = self.group_answers(
                    fields(o, ["code", "population", "stratifier"]),
                    Some(o),
                    ids,
                );
                self.groups.insert(o.id(), a);
                a
            }
            false if !v.is_array() && !v.is_null() => {
                self.group_answers([Some(None); 3], None, ids)
            }
            false => None,
        }
    }

    /// One pass over a stratifier's strata for `pqom-3`, `pqom-10`, `mrp-2` and what its group's
    /// checks need, from the strata's [`NodeInfo`] (shared with `pqom-13`): the strata's JSON is
    /// not read again, except for the codes of strata with several or long codes (`pqom-10`).
    /// `o` is the stratifier when it is an object; `absent` stands for a primitive focus.
    fn stratifier_info<'t>(
        &mut self,
        absent: [Field<'t>; 2],
        o: Option<N<'t>>,
        ids: Ids<'_>,
    ) -> StratifierInfo {
        let mut out = StratifierInfo {
            systems: None,
            distinct: None,
            sums: None,
            xor: None,
        };
        let [code, stratum] = match o {
            Some(o) => fields(o, ["code", "stratum"]),
            None => absent,
        };
        let mut strat: SmallVec<[&str; 2]> = SmallVec::new();
        let codes_ok = code
            .and_then(|c| codes_in(c, STRAT, &mut |k| strat.push(k)))
            .is_some();
        let mut keys: SmallVec<[CodeKey; 32]> = SmallVec::new();
        // Some stratum has codes that are not one short key: read them again, as text.
        let mut reread = false;
        let mut codes_handled = true;
        let mut systems_all = ALL_SYSTEMS;
        let mut systems_handled = true;
        let mut values_ok = true;
        let mut pops_ok = true;
        let mut num_le_den = true;
        let mut xor = Some(true);
        let mut sum = [0i64; 3];
        let strata_ok = stratum
            .and_then(|s| {
                objs(s, &mut |st| {
                    let info = *self.node_obj(st, ids);
                    xor = xor.zip(info.xor).map(|(a, b)| a & b);
                    match info.pops {
                        Some(p) => {
                            num_le_den &= num_le_den_holds(&p);
                            for (total, add) in sum.iter_mut().zip(p.sum) {
                                match total.checked_add(add) {
                                    Some(t) => *total = t,
                                    None => pops_ok = false,
                                }
                            }
                        }
                        None => pops_ok = false,
                    }
                    match info.codings {
                        Some(c) => {
                            match c.systems {
                                Some(m) => systems_all &= m,
                                None => systems_handled = false,
                            }
                            match c.codes {
                                Some(Codes::Zero) => {}
                                Some(Codes::One(k)) => keys.push(k),
                                Some(Codes::Other) => reread = true,
                                None => codes_handled = false,
                            }
                        }
                        None => values_ok = false,
                    }
                    Some(())
                })
            })
            .is_some();
        if !strata_ok {
            return out;
        }
        out.xor = xor;
        if !values_ok {
            return out;
        }
        if codes_handled {
            out.distinct = if reread {
                stratum.flatten().and_then(distinct_stratum_codes)
            } else {
                let total = keys.len();
                keys.sort_unstable();
                keys.dedup();
                Some((keys.len(), total))
            };
        }
        if codes_ok && systems_handled {
            let required = STRATUM_SYSTEMS
                .iter()
                .enumerate()
                .filter(|(_, (k, _))| strat.contains(k))
                .fold(0u16, |m, (i, _)| m | 1 << i);
            // Every coding has each required system: only possible for one required system, or
            // with no codings at all (then every bit is set).
            out.systems = Some(required & !systems_all == 0);
        }
        if let (true, true, Some((distinct, _))) = (codes_ok, pops_ok, out.distinct) {
            out.sums = Some(StratifierSums {
                insight: strat.contains(&"insight-category"),
                complete: COMPLETE
                    .iter()
                    .any(|(k, n)| strat.contains(k) && distinct == *n),
                sum,
                num_le_den,
            });
        }
        out
    }

    /// The group-level checks (`pqom-1`, `-2`, `-4`, `-5`) from the group's populations and its
    /// stratifiers' summaries. When any part of the group has a shape left to FHIRPath, there
    /// are no answers and all four checks fall back (slower, never wrong).
    fn group_answers(
        &mut self,
        f: [Field<'_>; 3],
        o: Option<N<'_>>,
        ids: Ids<'_>,
    ) -> Option<GroupAnswers> {
        let [code, population, stratifier] = f;
        let mut ratio = false;
        codes_in(code?, IND, &mut |k| {
            ratio |= k == "midwife-staffing-fill-rate"
        })?;
        let pops = match o {
            Some(o) => self.node_obj(o, ids).pops?,
            None => pops_of(population?, self, ids)?,
        };
        let mut a = GroupAnswers {
            ratio,
            num_le_den: num_le_den_holds(&pops),
            strata_num_le_den: true,
            sum_le: true,
            sum_eq: true,
        };
        objs(stratifier?, &mut |sf| {
            let s = self.stratifier_obj(sf, ids).sums?;
            a.strata_num_le_den &= s.num_le_den;
            for (k, total) in pops.first.iter().enumerate() {
                if let Some(t) = *total {
                    a.sum_le &= s.insight || s.sum[k] <= t;
                    a.sum_eq &= !s.complete || s.sum[k] == t;
                }
            }
            Some(())
        })?;
        Some(a)
    }
}

/// What the group-level checks answer, before the ratio exemption of `pqom-1` and `pqom-2`.
#[derive(Clone, Copy)]
struct GroupAnswers {
    /// The group is the ratio indicator (exempt from numerator <= denominator).
    ratio: bool,
    /// `pqom-1`'s condition on the group's own populations.
    num_le_den: bool,
    /// `pqom-2`'s condition holds in every stratum.
    strata_num_le_den: bool,
    /// `pqom-4`.
    sum_le: bool,
    /// `pqom-5`.
    sum_eq: bool,
}

#[derive(Clone, Copy)]
struct StratifierInfo {
    /// `pqom-3`.
    systems: Option<bool>,
    /// `pqom-10`: (distinct, total) of `stratum.value.coding.code`.
    distinct: Option<(usize, usize)>,
    /// What the group's checks read; `None` when any of it is left to FHIRPath.
    sums: Option<StratifierSums>,
    /// `value.exists() xor component.exists()` in every stratum (`mrp-2`).
    xor: Option<bool>,
}

#[derive(Clone, Copy)]
struct StratifierSums {
    /// Coded `insight-category` (exempt from `pqom-4`).
    insight: bool,
    /// Lists every category of its system (`pqom-5` applies).
    complete: bool,
    /// Per population code, the sum of the strata's counts.
    sum: [i64; 3],
    /// `pqom-2`'s condition holds in every stratum.
    num_le_den: bool,
}

#[derive(Clone, Copy)]
struct NodeInfo {
    /// `population` (`pqom-9`, `pqom-13`, and what groups and stratifiers add up).
    pops: Option<Pops>,
    /// `value.exists() xor component.exists()` (`mrp-2` on a stratum).
    xor: Option<bool>,
    /// `value.coding` (`pqom-3`, `pqom-10` on the stratifier); `None` when `value` or
    /// `value.coding` has a shape left to FHIRPath.
    codings: Option<Codings>,
}

/// What a stratifier's checks need of one stratum's `value.coding`.
#[derive(Clone, Copy)]
struct Codings {
    /// Bit `i` set: every coding's system is `STRATUM_SYSTEMS[i]`'s (all bits without codings);
    /// `None` when a system is not a plain string.
    systems: Option<u16>,
    /// The codes; `None` when a code is not a plain string.
    codes: Option<Codes>,
}

/// Every bit of [`Codings::systems`].
const ALL_SYSTEMS: u16 = (1 << STRATUM_SYSTEMS.len()) - 1;

/// The codes of a stratum's `value.coding`: a stratum has one, short, which a key holds exactly.
#[derive(Clone, Copy)]
enum Codes {
    Zero,
    One(CodeKey),
    /// Several codes, or a code too long for a key: the stratifier reads their text.
    Other,
}

/// A code of at most 15 bytes, exactly: its bytes and its length in the last byte, so that two
/// keys are equal exactly when the codes are.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CodeKey([u64; 2]);

impl CodeKey {
    fn new(code: &str) -> Option<CodeKey> {
        let b = code.as_bytes();
        if b.len() > 15 {
            return None;
        }
        let mut k = [0u8; 16];
        for (i, &c) in b.iter().enumerate() {
            k[i] = c;
        }
        k[15] = b.len() as u8;
        let w = |i: usize| u64::from_le_bytes(k[i..i + 8].try_into().expect("8 bytes"));
        Some(CodeKey([w(0), w(8)]))
    }
}

/// The bit of `system` in [`Codings::systems`] (none for an absent or other system).
fn system_bit(system: Option<&str>) -> u16 {
    let Some(s) = system else { return 0 };
    STRATUM_SYSTEMS
        .iter()
        .position(|(_, x)| x.len() == s.len() && *x == s)
        .map_or(0, |i| 1 << i)
}

/// [`Codings`] of a node's `value` field: `stratum.value.coding` as the stratifier's checks read
/// it, `None` when not handled.
fn value_codings(value: Field<'_>) -> Option<Codings> {
    let mut c = Codings {
        systems: Some(ALL_SYSTEMS),
        codes: Some(Codes::Zero),
    };
    objs(value?, &mut |v| {
        let [coding] = fields(v, ["coding"]);
        objs(coding?, &mut |cd| {
            let [s, k] = coding_fields(cd);
            c.systems = c.systems.zip(s).map(|(m, s)| m & system_bit(s));
            c.codes = match (c.codes, k) {
                (Some(codes), Some(k)) => Some(match (codes, k) {
                    (codes, None) => codes,
                    (Codes::Zero, Some(k)) => CodeKey::new(k).map_or(Codes::Other, Codes::One),
                    _ => Codes::Other,
                }),
                _ => None,
            };
            Some(())
        })
    })?;
    Some(c)
}

/// `stratum.value.coding.code` of a stratifier, by text: (distinct, total).
fn distinct_stratum_codes(stratum: N<'_>) -> Option<(usize, usize)> {
    let mut codes: SmallVec<[&str; 32]> = SmallVec::new();
    objs(Some(stratum), &mut |st| {
        let [value] = fields(st, ["value"]);
        objs(value?, &mut |v| {
            let [coding] = fields(v, ["coding"]);
            objs(coding?, &mut |cd| {
                if let Some(k) = coding_fields(cd)[1]? {
                    codes.push(k);
                }
                Some(())
            })
        })
    })?;
    let total = codes.len();
    codes.sort_unstable();
    codes.dedup();
    Some((codes.len(), total))
}

/// One `population` item: which of numerator, denominator and initial-population its code names,
/// and its count; `None` for a shape left to FHIRPath.
type PopAnswer = Option<([bool; 3], Option<i64>)>;

/// [`Cache::slots`] of a node not read yet.
const EMPTY: u32 = u32::MAX;
/// [`Cache::slots`]: this bit and a count's value (`0..!COUNT`); below it, an index of `infos`.
const COUNT: u32 = 1 << 31;

/// [`NodeInfo`] from a node's `value`, `component` and `population` fields.
fn node_info(
    [value_field, component, population]: [Field<'_>; 3],
    cache: &mut Cache,
    ids: Ids<'_>,
) -> NodeInfo {
    let value = value_field.and_then(|v| match v {
        None => Some(false),
        Some(v) => v.is_object().then_some(true),
    });
    let component = component.and_then(|c| match c {
        None => Some(false),
        Some(v) if v.is_array() => v.items().all(|x| x.is_object()).then(|| v.len() > 0),
        Some(v) => v.is_object().then_some(true),
    });
    NodeInfo {
        pops: population.and_then(|p| pops_of(p, cache, ids)),
        xor: value.zip(component).map(|(v, c)| v != c),
        codings: cache.value_codings(value_field, ids),
    }
}

/// One field of an object: `Some(None)` when absent, `None` (not handled) for a duplicate key, a
/// `_name` companion, or a key that extends the name (`valueQuantity` for `value`), which the
/// evaluator would read as a choice element.
pub(crate) type Field<'t> = Option<Option<N<'t>>>;

/// The fields `names` of `o` in one pass over its keys (one pass that picks out all wanted
/// fields beats a scan per field, and a scan must see every key anyway). Each name is
/// judged on its own: an odd key spoils only the fields it could be confused with.
#[inline(always)]
pub(crate) fn fields<'t, const K: usize>(o: N<'t>, names: [&str; K]) -> [Field<'t>; K] {
    let mut out: [Field<'t>; K] = [Some(None); K];
    for (k, v) in o.members() {
        let k = k.as_bytes();
        for (slot, name) in out.iter_mut().zip(names) {
            let name = name.as_bytes();
            // Lengths first: most keys are none of the names, and a key that is not the name
            // but starts with it is longer.
            if k.len() == name.len() {
                if bytes_eq(k, name) {
                    *slot = match *slot {
                        Some(None) => Some(Some(v)),
                        _ => None,
                    };
                }
            } else if k.len() > name.len() {
                // `_name`, `nameX` or `_nameX` (no name starts with `_`).
                let at = usize::from(k[0] == b'_');
                if bytes_eq(&k[at..at + name.len()], name) {
                    *slot = None;
                }
            }
        }
    }
    out
}

/// [`fields`] of any focus: a primitive has no children (all absent); an array or null is not
/// handled.
fn fields_of<'t, const K: usize>(v: N<'t>, names: [&str; K]) -> Option<[Field<'t>; K]> {
    match v.is_object() {
        true => Some(fields(v, names)),
        false => (!v.is_array() && !v.is_null()).then_some([Some(None); K]),
    }
}

/// Calls `f` on each object a field holds (FHIRPath flattens arrays). Anything but an object or
/// an array of objects there is not handled.
fn objs<'t>(v: Option<N<'t>>, f: &mut impl FnMut(N<'t>) -> Option<()>) -> Option<()> {
    let Some(v) = v else {
        return Some(());
    };
    if v.is_array() {
        for x in v.items() {
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

/// Calls `f` on each object `o.name` reaches.
fn each<'t>(o: N<'t>, name: &str, f: &mut impl FnMut(N<'t>) -> Option<()>) -> Option<()> {
    let [field] = fields(o, [name]);
    objs(field?, f)
}

/// `[system, code]` of a Coding object, each a string primitive (`Some(None)` when absent) or
/// `None` where not handled.
fn coding_fields(cd: N<'_>) -> [Option<Option<&str>>; 2] {
    fn text(v: Option<N<'_>>) -> Option<Option<&str>> {
        match v {
            None => Some(None),
            Some(v) => v.as_str().map(Some),
        }
    }
    let [system, code] = fields(cd, ["system", "code"]);
    [system.and_then(text), code.and_then(text)]
}

/// Calls `f` with each code of `code.coding` (given the `code` field) whose system is `system`:
/// `code.coding.exists(system = S and code = C)` holds when `f` saw `C`.
fn codes_in<'t>(code: Option<N<'t>>, system: &str, f: &mut impl FnMut(&'t str)) -> Option<()> {
    objs(code, &mut |c| {
        let [coding] = fields(c, ["coding"]);
        objs(coding?, &mut |cd| {
            // Both must be handled, as the evaluator reads both.
            let [s, k] = coding_fields(cd);
            let (s, k) = (s?, k?);
            if s == Some(system)
                && let Some(k) = k
            {
                f(k);
            }
            Some(())
        })
    })
}

/// A JSON number the evaluator reads as an Integer (no fraction or exponent, fits in i64).
#[inline]
fn integer(v: N<'_>) -> Option<i64> {
    let text = v.raw_number()?;
    // Plain short integers (every count) in one loop; 18 digits cannot overflow.
    let b = text.as_bytes();
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    if (1..=18).contains(&digits.len()) {
        let mut n = 0i64;
        for &d in digits {
            let d = d.wrapping_sub(b'0');
            if d > 9 {
                // A fraction or an exponent (the tree holds only JSON numbers).
                return None;
            }
            n = n * 10 + i64::from(d);
        }
        return Some(if neg { -n } else { n });
    }
    if text.contains(['.', 'e', 'E']) {
        return None;
    }
    text.parse::<i64>().ok()
}

/// The strings at the end of a path of elements: (distinct count, total count).
fn distinct_codes(focus: N<'_>, path: &[&str]) -> Option<(usize, usize)> {
    fn go<'t>(o: N<'t>, path: &[&str], out: &mut SmallVec<[&'t str; 32]>) -> Option<()> {
        match path {
            [] => Some(()),
            [leaf] => {
                let [f] = fields(o, [*leaf]);
                if let Some(s) = f? {
                    out.push(s.as_str()?);
                }
                Some(())
            }
            [first, rest @ ..] => each(o, first, &mut |x| go(x, rest, out)),
        }
    }
    if !focus.is_object() {
        // A primitive has no children; an array or null is not handled.
        return (!focus.is_array() && !focus.is_null()).then_some((0, 0));
    }
    let o = focus;
    let mut codes: SmallVec<[&str; 32]> = SmallVec::new();
    go(o, path, &mut codes)?;
    let total = codes.len();
    codes.sort_unstable();
    codes.dedup();
    Some((codes.len(), total))
}

/// Per population code (numerator, denominator, initial-population): whether a population has it,
/// the first `count` among those populations, and the sum of their counts.
#[derive(Clone, Copy, Default)]
struct Pops {
    exists: [bool; 3],
    first: [Option<i64>; 3],
    sum: [i64; 3],
}

/// [`Pops`] of a node's `population` field.
fn pops_of(population: Option<N<'_>>, cache: &mut Cache, ids: Ids<'_>) -> Option<Pops> {
    let mut p = Pops::default();
    objs(population, &mut |pop| {
        let (has, count) = cache.population(pop, ids)?;
        for (k, _) in has.iter().enumerate().filter(|(_, h)| **h) {
            p.exists[k] = true;
            if let Some(c) = count {
                p.first[k].get_or_insert(c);
                p.sum[k] = p.sum[k].checked_add(c)?;
            }
        }
        Some(())
    })?;
    Some(p)
}

/// Which of numerator, denominator and initial-population a `code` holds
/// (`code.coding.exists(system = MP and code = C)`), `None` for shapes left to FHIRPath.
fn pop_code(code: N<'_>) -> Option<[bool; 3]> {
    let mut has = [false; 3];
    codes_in(Some(code), MP, &mut |k| {
        for (h, c) in has.iter_mut().zip(POPS) {
            *h |= k == c;
        }
    })
    .map(|()| has)
}

/// How many distinct texts each of [`Cache::remembered`]'s tables keeps.
const REMEMBERED: usize = 4096;

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
