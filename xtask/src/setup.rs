//! `cargo xtask setup`: every system package the project and its tests need, idempotently.
//!
//! The warm path asks dpkg and the filesystem only (no network) and finishes in well under a
//! second. Mirror host names are never written anywhere: new apt sources (bookworm-backports
//! for the host, sid for the lab kernel) reuse the URIs of the machine's existing Debian entry.

use crate::util::{self, Result, cache_dir, ok, output, root_cmd, step, succeeds};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A Debian package and the oldest version that does the job (`None`: any).
struct Package {
    name: &'static str,
    min_version: Option<&'static str>,
    /// Install from bookworm-backports (bookworm's own version is too old).
    backports: bool,
    why: &'static str,
}

const fn pkg(name: &'static str, why: &'static str) -> Package {
    Package {
        name,
        min_version: None,
        backports: false,
        why,
    }
}

const fn bpo(name: &'static str, min: &'static str, why: &'static str) -> Package {
    Package {
        name,
        min_version: Some(min),
        backports: true,
        why,
    }
}

const PACKAGES: &[Package] = &[
    pkg("gcc", "C compiler for -sys crates"),
    pkg("libc6-dev", "C headers for -sys crates"),
    pkg("pkg-config", "finds system libraries for -sys crates"),
    pkg("libudev-dev", "hidapi's hidraw backend"),
    pkg("libvulkan1", "the Vulkan loader"),
    pkg("libvulkan-dev", "Vulkan headers and the loader's dev link"),
    bpo(
        "mesa-vulkan-drivers",
        "25",
        "lavapipe with dma-buf import (Mesa 25)",
    ),
    bpo("libdrm-dev", "2.4.120", "libdrm headers"),
    bpo("libgbm-dev", "25", "GBM scanout buffers"),
    pkg("libopenxr-loader1", "the Khronos OpenXR loader"),
    pkg("libopenxr-dev", "OpenXR loader dev link"),
    pkg("libopenxr-utils", "hello_xr"),
    pkg(
        "openxr-layer-corevalidation",
        "the OpenXR core validation layer the host tests run apps under",
    ),
    pkg(
        "vulkan-validationlayers",
        "the Vulkan validation layer (LEASEHOLD_VK_VALIDATION=1)",
    ),
    bpo("qemu-system-x86", "1:10", "the VM lab (QEMU 10)"),
    pkg("busybox-static", "virtme-ng's guest init"),
    pkg("kmod", "modprobe/depmod for the lab kernel"),
    pkg("udev", "udevadm in the lab guest"),
    pkg("python3-venv", "a private virtualenv for virtme-ng"),
    pkg("fonts-dejavu-core", "the font of the CLI's PNG plots"),
    pkg(
        "sway",
        "a real Wayland DRM lessor (wp_drm_lease_device_v1) in the lab",
    ),
    pkg("seatd", "seat management for sway in the lab"),
    pkg(
        "xserver-xorg-core",
        "a real X11 RandR lessor (modesetting driver) in the lab",
    ),
];

/// cargo-fuzz, pinned: builds and runs the parsers' fuzz targets (stable toolchain,
/// `--sanitizer none`).
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// virtme-ng, pinned: the lab runner depends on its command line.
const VIRTME_NG: &str = "virtme-ng==1.42";

pub fn run(args: &[String]) -> Result {
    let mut refresh_kernel = false;
    for a in args {
        match a.as_str() {
            "--refresh-kernel" => refresh_kernel = true,
            other => return Err(format!("setup: unknown argument `{other}`")),
        }
    }
    let t0 = Instant::now();
    ensure_packages()?;
    ensure_virtme_ng()?;
    ensure_cargo_fuzz()?;
    ensure_lab_user()?;
    lab_kernel(refresh_kernel)?;
    step(&format!(
        "setup complete in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The installed version of a package, if it is installed.
fn installed_version(name: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\t${Version}", name])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let (status, version) = s.split_once('\t')?;
    status.ends_with(" installed").then(|| version.to_string())
}

fn version_at_least(have: &str, min: &str) -> bool {
    succeeds(Command::new("dpkg").args(["--compare-versions", have, "ge", min]))
}

fn ensure_packages() -> Result {
    step("system packages");
    if !Path::new("/usr/bin/dpkg-query").exists() {
        return Err(
            "this is not a Debian system (no dpkg-query); Leasehold's setup targets Debian 12"
                .into(),
        );
    }
    let mut missing: Vec<&Package> = Vec::new();
    for p in PACKAGES {
        match installed_version(p.name) {
            Some(v) if p.min_version.is_none_or(|m| version_at_least(&v, m)) => {}
            Some(v) => {
                println!(
                    "  {} {v} is too old (need >= {}): {}",
                    p.name,
                    p.min_version.unwrap_or("?"),
                    p.why
                );
                missing.push(p);
            }
            None => {
                println!("  {} missing: {}", p.name, p.why);
                missing.push(p);
            }
        }
    }
    if missing.is_empty() {
        ok(&format!("{} packages present", PACKAGES.len()));
        return Ok(());
    }
    if missing.iter().any(|p| p.backports) {
        ensure_backports_source()?;
    }
    let t0 = Instant::now();
    util::run(
        root_cmd("apt-get")
            .args(["-q", "update"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let mut install = root_cmd("apt-get");
    install
        .args([
            "-q",
            "-y",
            "--no-install-recommends",
            "-o",
            "Dpkg::Options::=--force-confold",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive");
    if missing.iter().any(|p| p.backports) {
        // Target release raises backports' priority for these packages and their
        // dependencies, so Mesa, libdrm and QEMU come from one consistent suite.
        install.args(["-t", "bookworm-backports"]);
    }
    install.arg("install").args(missing.iter().map(|p| p.name));
    util::run(&mut install)?;
    for p in &missing {
        match installed_version(p.name) {
            Some(v) if p.min_version.is_none_or(|m| version_at_least(&v, m)) => {}
            other => {
                return Err(format!(
                    "{} is still not installed at the needed version (have {other:?}, need {:?})",
                    p.name, p.min_version
                ));
            }
        }
    }
    ok(&format!(
        "installed {} packages in {:.1} s",
        missing.len(),
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// One Debian archive entry of the machine's own apt configuration.
#[derive(Debug, Clone, PartialEq)]
struct DebianSource {
    uris: Vec<String>,
    signed_by: Option<String>,
}

/// Finds the machine's entry for the main Debian archive (the one serving `bookworm`).
fn find_debian_source() -> Result<DebianSource> {
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in &files {
        if f.extension().is_some_and(|e| e == "sources") {
            let text = fs::read_to_string(f).unwrap_or_default();
            if let Some(s) = parse_deb822(&text, "bookworm") {
                return Ok(s);
            }
        }
    }
    let mut one_line = vec![PathBuf::from("/etc/apt/sources.list")];
    one_line.extend(
        files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "list")),
    );
    for f in one_line {
        let text = fs::read_to_string(&f).unwrap_or_default();
        if let Some(s) = parse_one_line(&text, "bookworm") {
            return Ok(s);
        }
    }
    Err("found no apt source for Debian bookworm to derive bookworm-backports and the lab kernel's sid source from".into())
}

fn parse_deb822(text: &str, suite: &str) -> Option<DebianSource> {
    for stanza in text.split("\n\n") {
        let mut types = "";
        let mut uris = "";
        let mut suites = "";
        let mut signed_by = None;
        for line in stanza.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.trim() {
                    "Types" => types = v.trim(),
                    "URIs" => uris = v.trim(),
                    "Suites" => suites = v.trim(),
                    "Signed-By" => signed_by = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let is_deb = types.split_whitespace().any(|t| t == "deb");
        if is_deb && suites.split_whitespace().any(|s| s == suite) && !uris.is_empty() {
            return Some(DebianSource {
                uris: uris.split_whitespace().map(String::from).collect(),
                signed_by,
            });
        }
    }
    None
}

fn parse_one_line(text: &str, suite: &str) -> Option<DebianSource> {
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        if words.next() != Some("deb") {
            continue;
        }
        let mut signed_by = None;
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for w in words.by_ref() {
                let opt = w.trim_start_matches('[').trim_end_matches(']');
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let (Some(uri), Some(s)) = (words.next(), words.next()) else {
            continue;
        };
        if s == suite {
            return Some(DebianSource {
                uris: vec![uri.to_string()],
                signed_by,
            });
        }
    }
    None
}

fn render_deb822(src: &DebianSource, suite: &str) -> String {
    let mut s = format!(
        "# Written by `cargo xtask setup` from this machine's own Debian source entry.\n\
         Types: deb\nURIs: {}\nSuites: {suite}\nComponents: main\n",
        src.uris.join(" ")
    );
    if let Some(k) = &src.signed_by {
        s.push_str(&format!("Signed-By: {k}\n"));
    }
    s
}

const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/leasehold-bookworm-backports.sources";

fn ensure_backports_source() -> Result {
    let already = fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path() != Path::new(BACKPORTS_FILE))
                .any(|e| {
                    fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .contains("bookworm-backports")
                })
        })
        .unwrap_or(false)
        || fs::read_to_string("/etc/apt/sources.list")
            .unwrap_or_default()
            .contains("bookworm-backports");
    if already {
        ok("bookworm-backports already in apt sources");
        return Ok(());
    }
    let src = find_debian_source()?;
    let text = render_deb822(&src, "bookworm-backports");
    if fs::read_to_string(BACKPORTS_FILE).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    println!("  adding {BACKPORTS_FILE} (URIs from the existing Debian entry)");
    let tmp = std::env::temp_dir().join("leasehold-backports.sources");
    fs::write(&tmp, &text).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    util::run(
        root_cmd("install")
            .args(["-m", "644"])
            .arg(&tmp)
            .arg(BACKPORTS_FILE),
    )
}

/// The unprivileged account the lab runs sway as (sway refuses to run as root). The lab
/// guest shares the host's /etc, so the account must exist on the host.
pub const LAB_USER: &str = "leasehold-lab";

fn ensure_lab_user() -> Result {
    step("lab user");
    if succeeds(Command::new("id").arg(LAB_USER)) {
        ok(&format!("{LAB_USER} exists"));
        return Ok(());
    }
    util::run(root_cmd("useradd").args([
        "--system",
        "--user-group",
        "--shell",
        "/usr/sbin/nologin",
        "--home-dir",
        "/nonexistent",
        "--no-create-home",
        "--groups",
        "video,render",
        LAB_USER,
    ]))?;
    ok(&format!(
        "created system user {LAB_USER} (groups video, render)"
    ));
    Ok(())
}

/// The virtualenv holding virtme-ng (`vng`).
pub fn venv_dir() -> PathBuf {
    cache_dir().join("venv")
}

pub fn vng_path() -> PathBuf {
    venv_dir().join("bin/vng")
}

fn ensure_virtme_ng() -> Result {
    step("virtme-ng");
    let want = VIRTME_NG.split("==").nth(1).unwrap_or_default();
    let have = output(Command::new(vng_path()).arg("--version")).unwrap_or_default();
    if have.contains(want) {
        ok(&format!("{} ({})", have.trim(), vng_path().display()));
        return Ok(());
    }
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    if !venv_dir().join("bin/pip").exists() {
        util::run(Command::new(python).args(["-m", "venv"]).arg(venv_dir()))?;
    }
    util::run(Command::new(venv_dir().join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        VIRTME_NG,
    ]))?;
    let have = output(Command::new(vng_path()).arg("--version"))?;
    ok(&format!("installed {}", have.trim()));
    Ok(())
}

fn ensure_cargo_fuzz() -> Result {
    step("cargo-fuzz");
    let have = output(Command::new("cargo").args(["fuzz", "--version"])).unwrap_or_default();
    if have.contains(CARGO_FUZZ_VERSION) {
        ok(have.trim());
        return Ok(());
    }
    util::run(Command::new("cargo").args([
        "install",
        "--quiet",
        "--locked",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))?;
    let have = output(Command::new("cargo").args(["fuzz", "--version"]))?;
    ok(&format!("installed {}", have.trim()));
    Ok(())
}

/// Where the lab kernel's downloads and private apt state live.
pub fn lab_cache() -> PathBuf {
    cache_dir().join("lab")
}

/// The lab kernel's release string (as in /usr/lib/modules/<release>), once installed.
pub fn lab_kernel_release() -> Result<String> {
    let f = lab_cache().join("kernel-release");
    let rel = fs::read_to_string(&f)
        .map_err(|_| "no lab kernel installed: run `cargo xtask setup`".to_string())?;
    let rel = rel.trim().to_string();
    if !kernel_installed(&rel) {
        return Err(format!(
            "lab kernel {rel} is not complete under /usr/lib/modules: run `cargo xtask setup`"
        ));
    }
    Ok(rel)
}

fn kernel_installed(rel: &str) -> bool {
    let dir = Path::new("/usr/lib/modules").join(rel);
    dir.join("vmlinuz").exists() && dir.join("modules.dep").exists()
}

/// The sid kernel (virtio-gpu vblank timer, vgem, uhid), unpacked under /usr/lib/modules.
/// Never installed as a package: the host system stays bookworm.
fn lab_kernel(refresh: bool) -> Result {
    step("lab kernel");
    if !refresh && let Ok(rel) = lab_kernel_release() {
        ok(&format!("{rel} (/usr/lib/modules/{rel})"));
        return Ok(());
    }
    let t0 = Instant::now();
    let cache = lab_cache();
    let apt = cache.join("apt");
    for d in [
        "lists/partial",
        "sources.list.d",
        "preferences.d",
        "cache/archives/partial",
    ] {
        fs::create_dir_all(apt.join(d))
            .map_err(|e| format!("create {}: {e}", apt.join(d).display()))?;
    }
    let src = find_debian_source()?;
    fs::write(
        apt.join("sources.list.d/sid.sources"),
        render_deb822(&src, "sid"),
    )
    .map_err(|e| format!("write sid source: {e}"))?;
    let opts: Vec<String> = vec![
        format!("Dir::State::Lists={}", apt.join("lists").display()),
        format!(
            "Dir::Etc::SourceParts={}",
            apt.join("sources.list.d").display()
        ),
        "Dir::Etc::SourceList=/dev/null".into(),
        format!(
            "Dir::Etc::PreferencesParts={}",
            apt.join("preferences.d").display()
        ),
        "Dir::Etc::Preferences=/dev/null".into(),
        format!("Dir::Cache={}", apt.join("cache").display()),
        "Dir::State::Status=/dev/null".into(),
        "APT::Sandbox::User=root".into(),
    ];
    let apt_cmd = |prog: &str| {
        let mut c = Command::new(prog);
        for o in &opts {
            c.arg("-o").arg(o);
        }
        c
    };
    util::run(apt_cmd("apt-get").args(["-q", "update"]))?;
    let show = output(apt_cmd("apt-cache").args(["show", "linux-image-amd64"]))?;
    let rel = kernel_release_from_meta(&show)
        .ok_or("sid's linux-image-amd64 names no linux-image-<release> dependency")?;
    println!("  sid's linux-image-amd64 points at {rel}");
    let debs = cache.join("debs").join(&rel);
    fs::create_dir_all(&debs).map_err(|e| format!("create {}: {e}", debs.display()))?;
    let have_debs = fs::read_dir(&debs).map(|rd| rd.count()).unwrap_or(0) >= 3;
    if !have_debs {
        let names: Vec<String> = ["linux-binary", "linux-modules", "linux-base"]
            .iter()
            .map(|p| format!("{p}-{rel}"))
            .collect();
        util::run(
            apt_cmd("apt-get")
                .arg("-q")
                .arg("download")
                .args(&names)
                .current_dir(&debs),
        )?;
    }
    let root = cache.join("root").join(&rel);
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    for deb in fs::read_dir(&debs).map_err(|e| format!("read {}: {e}", debs.display()))? {
        let deb = deb.map_err(|e| e.to_string())?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            util::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        }
    }
    let unpacked = root.join("usr/lib/modules").join(&rel);
    if !unpacked.join("vmlinuz").exists() {
        return Err(format!(
            "the {rel} packages hold no vmlinuz at {}",
            unpacked.display()
        ));
    }
    let target = Path::new("/usr/lib/modules").join(&rel);
    util::run(root_cmd("rm").arg("-rf").arg(&target))?;
    util::run(root_cmd("mkdir").args(["-p", "/usr/lib/modules"]))?;
    util::run(root_cmd("cp").arg("-a").arg(&unpacked).arg(&target))?;
    util::run(root_cmd("depmod").arg("-a").arg(&rel))?;
    fs::write(cache.join("kernel-release"), format!("{rel}\n")).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&root);
    ok(&format!(
        "{rel} ready in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// `linux-image-amd64`'s `Depends` names `linux-image-<release>`; returns `<release>`.
fn kernel_release_from_meta(show: &str) -> Option<String> {
    let depends = show.lines().find_map(|l| l.strip_prefix("Depends:"))?;
    depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find_map(|name| name.strip_prefix("linux-image-"))
        .filter(|r| r.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_entry_is_found_and_reused() {
        let text = "Types: deb\n# comment\nURIs: http://example.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/k.gpg\n\nTypes: deb\nURIs: http://example.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n";
        let s = parse_deb822(text, "bookworm").unwrap();
        assert_eq!(s.uris, vec!["http://example.invalid/debian"]);
        let out = render_deb822(&s, "bookworm-backports");
        assert!(out.contains("URIs: http://example.invalid/debian\n"));
        assert!(out.contains("Suites: bookworm-backports\n"));
        assert!(out.contains("Signed-By: /usr/share/keyrings/k.gpg\n"));
        assert!(parse_deb822(text, "trixie").is_none());
    }

    #[test]
    fn one_line_entry_with_options() {
        let text = "# x\ndeb-src http://a.invalid/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://a.invalid/debian bookworm main contrib\n";
        let s = parse_one_line(text, "bookworm").unwrap();
        assert_eq!(s.uris, vec!["http://a.invalid/debian"]);
        assert_eq!(s.signed_by.as_deref(), Some("/k.gpg"));
    }

    #[test]
    fn kernel_release_from_metapackage() {
        let show = "Package: linux-image-amd64\nVersion: 7.2.13-1\nDepends: linux-base-amd64 (= 7.2.13-1), linux-image-7.2.13+deb14-amd64 (= 7.2.13-1)\n";
        assert_eq!(
            kernel_release_from_meta(show).as_deref(),
            Some("7.2.13+deb14-amd64")
        );
        assert_eq!(
            kernel_release_from_meta("Depends: linux-image-amd64-signed\n"),
            None
        );
    }
}
