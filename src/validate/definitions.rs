//! Loading conformance resources from disk: single JSON resources, Bundles of them, and folders
//! (FHIR package folders included: `package/package.json` is skipped, every other `*.json` read).
//!
//! Owns: reading and sorting resources by type. Must not: interpret StructureDefinitions (that is
//! [`super::snapshot`] and [`super::compile`]); this is the only place in `validate` that does I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why the validator could not start. Always names the file, and the element when one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: sonic_rs::Error,
    },
    #[error("{file}: StructureDefinition {url}{}: {message}", element.as_ref().map(|e| format!(", element {e}")).unwrap_or_default())]
    Profile {
        file: PathBuf,
        url: String,
        element: Option<String>,
        message: String,
    },
}

/// One loaded conformance resource and the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub source: PathBuf,
    pub resource: Value,
}

impl Loaded {
    pub fn url(&self) -> Option<&str> {
        self.resource.get("url").and_then(Value::as_str)
    }
}

/// Every conformance resource read at start, by type. StructureDefinitions are keyed by canonical
/// URL (a later source replaces an earlier one with the same URL, so `--ig` can override).
#[derive(Debug, Default, Clone)]
pub struct Definitions {
    structure_definitions: Vec<Loaded>,
    sd_by_url: HashMap<String, usize>,
    value_sets: Vec<Loaded>,
    code_systems: Vec<Loaded>,
    others: Vec<Loaded>,
}

/// Resource types read from sources; everything else (examples, OperationDefinitions, ...) is
/// skipped so that an IG folder with examples can be passed as is.
const KEPT: &[&str] = &[
    "StructureDefinition",
    "ValueSet",
    "CodeSystem",
    "NamingSystem",
    "ImplementationGuide",
    "ConceptMap",
];

impl Definitions {
    /// Read every source in order (files or directories, recursively).
    pub fn load(sources: &[PathBuf]) -> Result<Self, LoadError> {
        let mut defs = Definitions::default();
        for source in sources {
            defs.add_path(source)?;
        }
        Ok(defs)
    }

    /// Add a file or a directory (recursively, `*.json` in name order).
    pub fn add_path(&mut self, path: &Path) -> Result<(), LoadError> {
        let meta = std::fs::metadata(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| LoadError::Io {
                    path: path.to_owned(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with('.') {
                    continue;
                }
                if entry.is_dir() {
                    self.add_path(&entry)?;
                } else if name.ends_with(".json") && name != "package.json" {
                    self.add_file(&entry)?;
                }
            }
            Ok(())
        } else {
            self.add_file(path)
        }
    }

    fn add_file(&mut self, path: &Path) -> Result<(), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let value: Value = sonic_rs::from_slice(&bytes).map_err(|source| LoadError::Json {
            path: path.to_owned(),
            source,
        })?;
        self.add_resource(path, value);
        Ok(())
    }

    /// Add one resource (a Bundle is unpacked). Non-conformance resources are ignored.
    pub fn add_resource(&mut self, source: &Path, resource: Value) {
        let rt = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let rt = rt.as_str();
        if rt == "Bundle" {
            if let Value::Object(mut o) = resource
                && let Some(Value::Array(entries)) = o.remove("entry")
            {
                for mut entry in entries {
                    if let Some(r) = entry.get_mut("resource").map(Value::take) {
                        self.add_resource(source, r);
                    }
                }
            }
            return;
        }
        if !KEPT.contains(&rt) {
            return;
        }
        let loaded = Loaded {
            source: source.to_owned(),
            resource,
        };
        match rt {
            "StructureDefinition" => {
                let Some(url) = loaded.url().map(str::to_owned) else {
                    return;
                };
                if let Some(&i) = self.sd_by_url.get(&url) {
                    self.structure_definitions[i] = loaded;
                } else {
                    self.sd_by_url.insert(url, self.structure_definitions.len());
                    self.structure_definitions.push(loaded);
                }
            }
            "ValueSet" => self.value_sets.push(loaded),
            "CodeSystem" => self.code_systems.push(loaded),
            _ => self.others.push(loaded),
        }
    }

    pub fn structure_definitions(&self) -> &[Loaded] {
        &self.structure_definitions
    }

    pub fn structure_definition(&self, url: &str) -> Option<&Loaded> {
        let url = url.split('|').next().unwrap_or(url);
        self.sd_by_url
            .get(url)
            .map(|&i| &self.structure_definitions[i])
    }

    pub fn value_sets(&self) -> &[Loaded] {
        &self.value_sets
    }

    pub fn code_systems(&self) -> &[Loaded] {
        &self.code_systems
    }

    /// NamingSystems, ImplementationGuides, ConceptMaps.
    pub fn others(&self) -> &[Loaded] {
        &self.others
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_are_unpacked_and_non_conformance_resources_skipped() {
        let mut d = Definitions::default();
        d.add_resource(
            Path::new("x.json"),
            serde_json::json!({"resourceType":"Bundle","entry":[
                {"resource":{"resourceType":"StructureDefinition","url":"http://a/sd"}},
                {"resource":{"resourceType":"ValueSet","url":"http://a/vs"}},
                {"resource":{"resourceType":"Patient","id":"p"}}
            ]}),
        );
        assert!(d.structure_definition("http://a/sd|1.0").is_some());
        assert_eq!(d.value_sets().len(), 1);
        assert_eq!(d.others().len(), 0);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Definitions::load(&[PathBuf::from("/nonexistent/defs.json")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/defs.json"), "{err}");
    }
}
