//! `pqom-gateway catalogue export` and `pqom-gateway map FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::map::{Catalogue, MapOutcome, Mapper};

#[derive(Debug, Args)]
pub struct CatalogueArgs {
    #[command(subcommand)]
    pub command: CatalogueCommand,
}

#[derive(Debug, Subcommand)]
pub enum CatalogueCommand {
    /// Write the CodeSystems and Measures generated from the catalogue.
    Export {
        /// Directory to write into (the repository's `profiles/`).
        #[arg(long, default_value = "profiles")]
        out: PathBuf,
        /// The catalogue file.
        #[arg(long, default_value = "mappings/catalogue/annex1.toml")]
        catalogue: PathBuf,
        /// Only check that the files in `--out` are what the catalogue generates; write nothing.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct MapArgs {
    /// A MeasureReport or a message Bundle (JSON).
    pub file: PathBuf,
    /// The mappings directory (catalogue/ and rules/).
    #[arg(long, default_value = "mappings", env = "PQOM_MAPPINGS")]
    pub mappings: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run_catalogue(args: CatalogueArgs) -> ExitCode {
    match args.command {
        CatalogueCommand::Export {
            out,
            catalogue,
            check,
        } => match export(&catalogue, &out, check) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn export(catalogue: &Path, out: &Path, check: bool) -> Result<(), String> {
    let c = Catalogue::load(catalogue).map_err(|e| e.to_string())?;
    let files = c.export();
    let mut stale = Vec::new();
    for (name, text) in &files {
        let path = out.join(name);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        } else {
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if !stale.is_empty() {
        return Err(format!(
            "{} generated file(s) differ from the catalogue; run `pqom-gateway catalogue export --out {}`:\n  {}",
            stale.len(),
            out.display(),
            stale.join("\n  ")
        ));
    }
    if !check {
        println!("wrote {} files to {}", files.len(), out.display());
    }
    Ok(())
}

pub fn run_map(args: MapArgs) -> ExitCode {
    let mapper = match Mapper::load(&args.mappings) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let input: serde_json::Value = match std::fs::read(&args.file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {}: {e}", args.file.display());
            return ExitCode::FAILURE;
        }
    };
    let outcome = mapper.map_report(&input);
    match args.format {
        Format::Json => {
            let issues: Vec<_> = outcome.issues.iter().map(|i| i.to_json()).collect();
            let mut v = serde_json::to_value(&outcome).unwrap_or_default();
            v["issues"] = serde_json::Value::Array(issues);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => print!("{}", render_text(&outcome)),
    }
    ExitCode::SUCCESS
}

/// The outcome as a table a person can read: one line per value, then why.
pub fn render_text(o: &MapOutcome) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<30} {:<6} {:<23} {:<28} {:>8} {:>8} {:>10}  rule",
        "indicator", "trust", "period", "stratum", "num", "den", "value"
    );
    for v in &o.values {
        let stratum = v.stratum.as_ref().map_or_else(
            || "total".to_owned(),
            |k| format!("{}={}", k.stratifier, k.code),
        );
        let den = v
            .denominator
            .map_or_else(|| "-".to_owned(), |d| d.to_string());
        let value = v
            .value
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
        let rule = o.trace.get(v.hit).map_or("", |h| h.rule.as_str());
        let _ = writeln!(
            s,
            "{:<30} {:<6} {:<23} {:<28} {:>8} {:>8} {:>10}  {}",
            v.indicator,
            v.trust,
            format!("{}..{}", v.period.start, v.period.end),
            stratum,
            v.numerator,
            den,
            value,
            rule
        );
    }
    let _ = writeln!(
        s,
        "\n{} value(s) from {} group(s)",
        o.values.len(),
        o.trace.len()
    );
    for h in &o.trace {
        let _ = writeln!(
            s,
            "  {} <- {} group `{}` ({}) by {}",
            h.indicator, h.measure, h.group, h.expression, h.rule
        );
        for n in &h.notes {
            let _ = writeln!(s, "      note: {n}");
        }
    }
    if !o.unmapped.is_empty() {
        let _ = writeln!(s, "\nunmapped ({}):", o.unmapped.len());
        for u in &o.unmapped {
            let _ = writeln!(
                s,
                "  {} group {} ({}): {}",
                u.measure,
                u.group.as_deref().unwrap_or("(no code)"),
                u.expression,
                u.reason
            );
        }
    }
    if !o.issues.is_empty() {
        let _ = writeln!(s, "\nissues ({}):", o.issues.len());
        for i in &o.issues {
            let _ = writeln!(
                s,
                "  {} {}: {}",
                i.severity.code(),
                i.expression.as_deref().unwrap_or("-"),
                i.diagnostics
            );
        }
    }
    s
}
