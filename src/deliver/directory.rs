//! The organisation directory: which ICB commissions a trust and which NHS England region
//! oversees that ICB, by ODS code, so that a trust's submission reaches its ICB's and its region's
//! subscribers.
//!
//! Owns loading `mappings/organisations.toml` (strictly: unknown fields, duplicate codes and
//! parents that do not exist stop the load with the file and line) and answering [`Directory::route`].
//! It does no I/O after [`Directory::load`] and knows nothing about subscriptions or HTTP; an
//! unknown trust is a [`RouteError`] the caller turns into an OperationOutcome
//! ([`RouteError::to_issue`]).
//!
//! File shape (one table array per level; parents are referenced by ODS code):
//!
//! ```toml
//! [[region]]
//! ods = "Y61"
//! name = "East of England"
//!
//! [[icb]]
//! ods = "QMM"
//! name = "NHS Norfolk and Waveney Integrated Care Board"
//! region = "Y61"
//!
//! [[trust]]
//! ods = "RM1"
//! name = "Norfolk and Norwich University Hospitals NHS Foundation Trust"
//! icb = "QMM"
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::fhir::{Issue, IssueType, ODS_ORG_SYSTEM};

/// One organisation: its ODS code and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    pub ods: String,
    pub name: String,
}

impl Organisation {
    /// The organisation as a FHIR `Identifier` (ODS organisation code system).
    pub fn identifier_json(&self) -> serde_json::Value {
        serde_json::json!({ "system": ODS_ORG_SYSTEM, "value": self.ods })
    }
}

/// The level of an organisation in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Region,
    Icb,
    Trust,
}

/// Where a trust's submissions go: the trust itself, its ICB and the ICB's NHS England region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub trust: Organisation,
    pub icb: Organisation,
    pub region: Organisation,
}

/// The loaded directory. Cheap to clone behind an `Arc`; immutable after load.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    regions: BTreeMap<String, Organisation>,
    icbs: BTreeMap<String, (Organisation, String)>,
    trusts: BTreeMap<String, (Organisation, String)>,
}

/// Why the directory file could not be loaded. Every variant names the file and, where the
/// problem is in the file, the line.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read organisation directory {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse {
        origin: String,
        message: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{origin}:{line}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        message: String,
    },
}

/// A trust the directory does not know: its submissions cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trust {ods:?} is not in the organisation directory")]
pub struct RouteError {
    pub ods: String,
}

impl RouteError {
    /// The issue a submitter sees: the sender names an organisation the gateway cannot route.
    /// The caller adds the FHIRPath of the element the ODS code came from (`Issue::at`), since
    /// only it knows whether that was `MessageHeader.sender` or `MeasureReport.reporter`.
    pub fn to_issue(&self) -> Issue {
        Issue::error(
            IssueType::BusinessRule,
            format!(
                "the submitting organisation ODS code {:?} is not a trust in the gateway's \
                 organisation directory; expected the ODS code of an NHS trust registered with an ICB",
                self.ods
            ),
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    region: Vec<RegionRow>,
    #[serde(default)]
    icb: Vec<IcbRow>,
    #[serde(default)]
    trust: Vec<TrustRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionRow {
    ods: Spanned<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IcbRow {
    ods: Spanned<String>,
    name: String,
    region: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustRow {
    ods: Spanned<String>,
    name: String,
    icb: Spanned<String>,
}

impl Directory {
    /// Load and check the directory file.
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Directory::from_toml(&text, &path.display().to_string())
    }

    /// Parse and check directory text; `origin` names the source in errors (usually the path).
    pub fn from_toml(text: &str, origin: &str) -> Result<Directory, DirectoryError> {
        let shape: FileShape = toml::from_str(text).map_err(|source| DirectoryError::Parse {
            origin: origin.to_string(),
            message: source.to_string().trim_end().to_string(),
            source: Box::new(source),
        })?;
        let invalid = |span: Range<usize>, message: String| DirectoryError::Invalid {
            origin: origin.to_string(),
            line: line_of(text, span.start),
            message,
        };
        // Codes are unique across all levels: one ODS code is one organisation.
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut claim = |code: &Spanned<String>, level: &str| {
            check_code(code.get_ref())
                .map_err(|m| invalid(code.span(), format!("{level} ods {m}")))?;
            if let Some(first) = seen.get(code.get_ref()) {
                return Err(invalid(
                    code.span(),
                    format!(
                        "duplicate ODS code {:?} (first defined on line {})",
                        code.get_ref(),
                        line_of(text, first.start)
                    ),
                ));
            }
            seen.insert(code.get_ref().clone(), code.span());
            Ok(())
        };

        let mut dir = Directory::default();
        for row in &shape.region {
            claim(&row.ods, "region")?;
            dir.regions.insert(
                row.ods.get_ref().clone(),
                Organisation {
                    ods: row.ods.get_ref().clone(),
                    name: row.name.clone(),
                },
            );
        }
        for row in &shape.icb {
            claim(&row.ods, "icb")?;
            if !dir.regions.contains_key(row.region.get_ref()) {
                return Err(invalid(
                    row.region.span(),
                    format!(
                        "ICB {} names region {:?}, which is not a [[region]] in this file",
                        row.ods.get_ref(),
                        row.region.get_ref()
                    ),
                ));
            }
            let org = Organisation {
                ods: row.ods.get_ref().clone(),
                name: row.name.clone(),
            };
            dir.icbs
                .insert(org.ods.clone(), (org, row.region.get_ref().clone()));
        }
        for row in &shape.trust {
            claim(&row.ods, "trust")?;
            if !dir.icbs.contains_key(row.icb.get_ref()) {
                return Err(invalid(
                    row.icb.span(),
                    format!(
                        "trust {} names ICB {:?}, which is not an [[icb]] in this file",
                        row.ods.get_ref(),
                        row.icb.get_ref()
                    ),
                ));
            }
            let org = Organisation {
                ods: row.ods.get_ref().clone(),
                name: row.name.clone(),
            };
            dir.trusts
                .insert(org.ods.clone(), (org, row.icb.get_ref().clone()));
        }
        Ok(dir)
    }

    /// Where a trust's submissions go. ODS codes are matched case-insensitively (they are
    /// issued in upper case; some EPRs send them lower-cased).
    pub fn route(&self, trust_ods: &str) -> Result<Route, RouteError> {
        let key = trust_ods.trim().to_ascii_uppercase();
        let unknown = || RouteError {
            ods: trust_ods.to_string(),
        };
        let (trust, icb_code) = self.trusts.get(&key).ok_or_else(unknown)?;
        // Load guarantees parents exist; stay total anyway rather than panic.
        let (icb, region_code) = self.icbs.get(icb_code).ok_or_else(unknown)?;
        let region = self.regions.get(region_code).ok_or_else(unknown)?;
        Ok(Route {
            trust: trust.clone(),
            icb: icb.clone(),
            region: region.clone(),
        })
    }

    /// A region, ICB or trust by ODS code.
    pub fn organisation(&self, ods: &str) -> Option<&Organisation> {
        let key = ods.trim().to_ascii_uppercase();
        self.regions
            .get(&key)
            .or_else(|| self.icbs.get(&key).map(|(o, _)| o))
            .or_else(|| self.trusts.get(&key).map(|(o, _)| o))
    }

    /// Whether an ODS code is a region, an ICB or a trust here (case-insensitive).
    pub fn kind(&self, ods: &str) -> Option<Kind> {
        let key = ods.trim().to_ascii_uppercase();
        if self.regions.contains_key(&key) {
            Some(Kind::Region)
        } else if self.icbs.contains_key(&key) {
            Some(Kind::Icb)
        } else if self.trusts.contains_key(&key) {
            Some(Kind::Trust)
        } else {
            None
        }
    }

    /// Trusts commissioned by an ICB, in ODS code order (for subscription filters).
    pub fn trusts_of_icb<'a>(&'a self, icb_ods: &'a str) -> impl Iterator<Item = &'a Organisation> {
        self.trusts
            .values()
            .filter(move |(_, icb)| icb == icb_ods)
            .map(|(o, _)| o)
    }

    /// ICBs in a region, in ODS code order.
    pub fn icbs_of_region<'a>(
        &'a self,
        region_ods: &'a str,
    ) -> impl Iterator<Item = &'a Organisation> {
        self.icbs
            .values()
            .filter(move |(_, region)| region == region_ods)
            .map(|(o, _)| o)
    }

    pub fn trust_count(&self) -> usize {
        self.trusts.len()
    }
}

/// ODS organisation codes are 3 to 5 upper-case letters and digits (trusts `RM1`, ICBs `QMM`,
/// regions `Y61`). Catching a lower-case or padded code here avoids a silent routing miss later.
fn check_code(code: &str) -> Result<(), String> {
    let ok = (3..=5).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{code:?} is not an ODS organisation code; expected 3 to 5 upper-case letters or digits"
        ))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[region]]
ods = "Y61"
name = "East of England"

[[icb]]
ods = "QMM"
name = "NHS Norfolk and Waveney Integrated Care Board"
region = "Y61"

[[trust]]
ods = "RM1"
name = "Norfolk and Norwich University Hospitals NHS Foundation Trust"
icb = "QMM"
"#;

    #[test]
    fn routes_trust_to_icb_and_region() {
        let dir = Directory::from_toml(SAMPLE, "test.toml").unwrap();
        let route = dir.route("RM1").unwrap();
        assert_eq!(route.icb.ods, "QMM");
        assert_eq!(route.region.ods, "Y61");
        assert_eq!(route.region.name, "East of England");
        assert_eq!(dir.route("rm1").unwrap(), route);
    }

    #[test]
    fn unknown_trust_is_an_error_with_an_issue() {
        let dir = Directory::from_toml(SAMPLE, "test.toml").unwrap();
        let err = dir.route("RXX").unwrap_err();
        assert_eq!(err.ods, "RXX");
        let issue = err.to_issue();
        assert_eq!(issue.code, IssueType::BusinessRule);
        assert!(issue.diagnostics.contains("\"RXX\""));
        // An ICB code is not a trust either.
        assert!(dir.route("QMM").is_err());
    }

    #[test]
    fn unknown_parent_stops_the_load_with_line() {
        let text = SAMPLE.replace("icb = \"QMM\"", "icb = \"QXX\"");
        let err = Directory::from_toml(&text, "orgs.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("orgs.toml:14:"), "{msg}");
        assert!(msg.contains("\"QXX\""), "{msg}");

        let text = SAMPLE.replace("region = \"Y61\"", "region = \"Y99\"");
        let msg = Directory::from_toml(&text, "orgs.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("orgs.toml:9:"), "{msg}");
    }

    #[test]
    fn duplicate_code_stops_the_load() {
        let text = format!("{SAMPLE}\n[[trust]]\nods = \"RM1\"\nname = \"Again\"\nicb = \"QMM\"\n");
        let msg = Directory::from_toml(&text, "orgs.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("duplicate ODS code \"RM1\""), "{msg}");
        assert!(msg.contains("first defined on line 12"), "{msg}");
        assert!(msg.starts_with("orgs.toml:17:"), "{msg}");
    }

    #[test]
    fn unknown_field_and_bad_code_stop_the_load() {
        let text = SAMPLE.replace("name = \"East of England\"", "nmae = \"East\"");
        let msg = Directory::from_toml(&text, "orgs.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("orgs.toml"), "{msg}");
        assert!(msg.contains("nmae"), "{msg}");

        let text = SAMPLE.replace("ods = \"RM1\"", "ods = \"rm1 \"");
        let msg = Directory::from_toml(&text, "orgs.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not an ODS organisation code"), "{msg}");
    }

    #[test]
    fn shipped_directory_loads_and_routes_the_example_system() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/organisations.toml");
        let dir = Directory::load(&path).unwrap();
        for trust in ["RM1", "RGP", "RCX"] {
            let route = dir.route(trust).unwrap();
            assert_eq!(route.icb.ods, "QMM");
            assert_eq!(route.region.ods, "Y61");
        }
        let qmm: Vec<_> = dir.trusts_of_icb("QMM").map(|o| o.ods.as_str()).collect();
        assert_eq!(qmm, ["RCX", "RGP", "RM1"]);
        let other = dir.route("RQ3").unwrap();
        assert_eq!(other.icb.ods, "QHL");
        assert_eq!(other.region.ods, "Y60");
    }
}
