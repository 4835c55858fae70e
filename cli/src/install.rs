//! `leasehold install`: makes Leasehold the user's active OpenXR runtime (the loader's
//! `$XDG_CONFIG_HOME/openxr/1/active_runtime.json`), or with `--print-env` writes the
//! manifest elsewhere and prints the `XR_RUNTIME_JSON=…` line for one shell instead.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

const TEMPLATE: &str = include_str!("../../manifests/openxr/leasehold_openxr.json.in");

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// Don't change the active runtime: write the manifest under the data directory and
    /// print the environment line that selects it.
    #[arg(long)]
    print_env: bool,
    /// The runtime library (default: libleasehold_openxr.so beside this executable).
    #[arg(long)]
    library: Option<PathBuf>,
}

fn xdg(var: &str, fallback: &str) -> Result<PathBuf> {
    if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither $XDG_* nor $HOME is set")?;
    Ok(PathBuf::from(home).join(fallback))
}

/// The library, checked: an existing ELF file, as an absolute path.
pub(crate) fn library(arg: Option<PathBuf>) -> Result<PathBuf> {
    let lib = match arg {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("the executable has no directory")?
            .join("libleasehold_openxr.so"),
    };
    let lib = lib.canonicalize().with_context(|| {
        format!(
            "{} not found: build the runtime first (cargo build --release -p leasehold-runtime) or pass --library",
            lib.display()
        )
    })?;
    let head = std::fs::read(&lib).with_context(|| format!("cannot read {}", lib.display()))?;
    if !head.starts_with(b"\x7fELF") {
        bail!("{} is not a shared library", lib.display());
    }
    Ok(lib)
}

pub(crate) fn manifest(lib: &Path) -> Result<String> {
    let path = lib
        .to_str()
        .context("the library path is not UTF-8")?
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    Ok(TEMPLATE.replace("@LIBRARY_PATH@", &path))
}

pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(a: InstallArgs) -> Result<()> {
    let lib = library(a.library)?;
    let text = manifest(&lib)?;
    if a.print_env {
        let path = xdg("XDG_DATA_HOME", ".local/share")?
            .join("leasehold")
            .join("leasehold_openxr.json");
        write_atomically(&path, &text)?;
        println!("XR_RUNTIME_JSON={}", path.display());
        return Ok(());
    }
    let active = xdg("XDG_CONFIG_HOME", ".config")?
        .join("openxr/1")
        .join("active_runtime.json");
    if let Ok(old) = std::fs::read_to_string(&active) {
        if old == text {
            println!(
                "Leasehold is already the active OpenXR runtime ({}).",
                active.display()
            );
            return Ok(());
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let backup = active.with_extension(format!("json.before-leasehold-{secs}"));
        std::fs::copy(&active, &backup)
            .with_context(|| format!("cannot back up {}", active.display()))?;
        println!("Previous active runtime saved as {}", backup.display());
    }
    write_atomically(&active, &text)?;
    println!(
        "Leasehold is now the active OpenXR runtime: {} → {}",
        active.display(),
        lib.display()
    );
    Ok(())
}
