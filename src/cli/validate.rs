//! `pqom-gateway validate`: validate FHIR JSON files against base R4, the PQOM profiles and any
//! extra conformance resources, the way the gateway does on ingest. For integration engineers and
//! vendor CI.
//!
//! Owns: argument handling, collecting files (directories recursively), running the validator on
//! all cores, and rendering the results (text, or OperationOutcome JSON). Must not: implement any
//! validation rule (that is `validate`), or stop at the first bad file.
//!
//! Exit status: 0 when no file has an error, 1 when any file has an error (or cannot be read),
//! 2 when the definitions cannot be loaded or the arguments are wrong.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::config::project_root;
use crate::fhir::{Issue, IssueType, Outcome, Severity};
use crate::validate::{LoadError, Validator, terminology};

/// Output format of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per issue: file, severity, code, expression, message; then a summary.
    Text,
    /// One file: its OperationOutcome. Several: a `collection` Bundle of OperationOutcomes, one
    /// entry per file (fullUrl = the file's `file://` URL).
    Json,
}

/// Flags of `validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Files or directories to validate (directories recursively, `*.json`).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Extra conformance resources to load (an IG or FHIR package folder, or a file); repeatable.
    #[arg(long = "ig", value_name = "DIR")]
    pub ig: Vec<PathBuf>,
    /// Also validate against this profile (canonical URL), besides each resource's meta.profile;
    /// repeatable.
    #[arg(long = "profile", value_name = "URL")]
    pub profile: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Worker threads (default: every core).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Also print information issues (text format).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Directory of the base FHIR R4 definitions (default: `definitions/r4` of the project).
    #[arg(long, env = "PQOM_DEFINITIONS_DIR")]
    pub definitions_dir: Option<PathBuf>,
    /// Directory of the PQOM profiles (default: `profiles/` of the project).
    #[arg(long, env = "PQOM_PROFILES_DIR")]
    pub profiles_dir: Option<PathBuf>,
}

/// Base definitions, then PQOM profiles (when present), then `--ig` folders: later sources
/// override earlier ones with the same canonical URL.
pub fn sources(args: &ValidateArgs) -> Vec<PathBuf> {
    let root = project_root();
    let mut out = vec![
        args.definitions_dir
            .clone()
            .unwrap_or_else(|| root.join("definitions/r4")),
    ];
    let profiles = args
        .profiles_dir
        .clone()
        .unwrap_or_else(|| root.join("profiles"));
    if profiles.is_dir() || args.profiles_dir.is_some() {
        out.push(profiles);
    }
    out.extend(args.ig.iter().cloned());
    out
}

/// Runs `validate`; see the module docs for the exit status.
pub fn run(args: ValidateArgs) -> ExitCode {
    let started = Instant::now();
    let validator = match load(&sources(&args)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("pqom-gateway validate: cannot load definitions: {e}");
            return ExitCode::from(2);
        }
    };
    for p in &args.profile {
        if !validator.has_profile(p) {
            eprintln!("pqom-gateway validate: profile {p} is not loaded (use --ig to load it)");
            return ExitCode::from(2);
        }
    }
    let loaded = started.elapsed();

    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for path in &args.paths {
        collect(path, &mut files, &mut unreadable);
    }
    let profiles: Vec<&str> = args.profile.iter().map(String::as_str).collect();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let validating = Instant::now();
    let mut results = validate_files(&validator, &files, &profiles, jobs);
    for (path, e) in unreadable {
        results.push((path, Outcome::single(Issue::error(IssueType::Exception, e))));
    }
    let elapsed = validating.elapsed();

    let failed = results.iter().filter(|(_, o)| o.has_errors()).count();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = match args.format {
        Format::Text => write_text(&mut out, &results, args.verbose),
        Format::Json => write_json(&mut out, &results),
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        eprintln!("pqom-gateway validate: cannot write output: {e}");
        return ExitCode::from(2);
    }
    if args.format == Format::Text {
        eprintln!(
            "{} file(s), {} with errors; definitions loaded in {:.2} s, validated in {:.2} s on {} thread(s)",
            results.len(),
            failed,
            loaded.as_secs_f64(),
            elapsed.as_secs_f64(),
            jobs
        );
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads the validator with terminology from the given sources.
pub fn load(sources: &[PathBuf]) -> Result<Validator, LoadError> {
    terminology::load_validator(sources)
}

/// Files under `path` (itself when a file; `*.json` recursively, in name order, when a folder).
fn collect(path: &Path, files: &mut Vec<PathBuf>, unreadable: &mut Vec<(PathBuf, String)>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                unreadable.push((path.to_owned(), format!("cannot read directory: {e}")));
                return;
            }
        };
        entries.sort();
        for entry in entries {
            let hidden = entry
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if entry.is_dir() {
                collect(&entry, files, unreadable);
            } else if entry.extension().is_some_and(|e| e == "json") {
                files.push(entry);
            }
        }
    } else {
        files.push(path.to_owned());
    }
}

/// Validates every file on `jobs` threads; results in input order.
pub fn validate_files(
    validator: &Validator,
    files: &[PathBuf],
    profiles: &[&str],
    jobs: usize,
) -> Vec<(PathBuf, Outcome)> {
    let next = AtomicUsize::new(0);
    let one = |path: &Path| -> Outcome {
        match std::fs::read(path) {
            Ok(bytes) => validator.validate(&bytes, profiles),
            Err(e) => Outcome::single(Issue::error(
                IssueType::Exception,
                format!("cannot read the file: {e}"),
            )),
        }
    };
    let mut slots: Vec<(usize, Outcome)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs.min(files.len()).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        done.push((i, one(path)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            // A worker that panicked lost its files: they are reported below, not dropped.
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    slots.sort_by_key(|(i, _)| *i);
    let mut results: Vec<(PathBuf, Outcome)> = Vec::with_capacity(files.len());
    let mut it = slots.into_iter().peekable();
    for (i, path) in files.iter().enumerate() {
        match it.peek() {
            Some((j, _)) if *j == i => {
                if let Some((_, o)) = it.next() {
                    results.push((path.clone(), o));
                }
            }
            _ => results.push((
                path.clone(),
                Outcome::single(Issue::error(
                    IssueType::Exception,
                    "internal error while validating this file",
                )),
            )),
        }
    }
    results
}

fn write_text(
    out: &mut impl Write,
    results: &[(PathBuf, Outcome)],
    verbose: bool,
) -> std::io::Result<()> {
    for (path, outcome) in results {
        let shown: Vec<&Issue> = outcome
            .issues
            .iter()
            .filter(|i| verbose || i.severity != Severity::Information)
            .collect();
        if shown.is_empty() {
            writeln!(out, "{}: ok", path.display())?;
            continue;
        }
        for i in shown {
            write!(
                out,
                "{}: {} [{}]",
                path.display(),
                i.severity.code(),
                i.code.code()
            )?;
            if let Some(expr) = &i.expression {
                write!(out, " {expr}")?;
            }
            write!(out, ": {}", i.diagnostics)?;
            if let (Some(profile), Some(element)) = (&i.profile, &i.element_id) {
                write!(out, " ({profile}#{element})")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn write_json(out: &mut impl Write, results: &[(PathBuf, Outcome)]) -> std::io::Result<()> {
    let doc: Value = if let [(_, outcome)] = results {
        outcome.to_json()
    } else {
        let entries: Vec<Value> = results
            .iter()
            .map(|(path, outcome)| {
                let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                json!({ "fullUrl": format!("file://{}", abs.display()), "resource": outcome.to_json() })
            })
            .collect();
        json!({ "resourceType": "Bundle", "type": "collection", "entry": entries })
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}
