//! `pqom-gateway catalogue export` and `pqom-gateway map FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::map::Catalogue;

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

pub fn run_map(_args: MapArgs) -> ExitCode {
    eprintln!("error: the mapping engine is not built yet");
    ExitCode::FAILURE
}
