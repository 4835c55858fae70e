//! `leasehold install`: the active-runtime manifest, the backup of another runtime's, and
//! `--print-env`.

use std::path::PathBuf;
use std::process::Command;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_leasehold"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("leasehold-install-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A stand-in library: the command checks for an ELF file, the loader is not involved.
fn fake_library(dir: &std::path::Path) -> PathBuf {
    let p = dir.join("libleasehold_openxr.so");
    std::fs::write(&p, b"\x7fELF\x02\x01\x01\0rest").unwrap();
    p
}

#[test]
fn install_writes_the_active_runtime_and_backs_up_another() {
    let home = tmp("active");
    let lib = fake_library(&home);
    let active = home.join("config/openxr/1/active_runtime.json");
    std::fs::create_dir_all(active.parent().unwrap()).unwrap();
    std::fs::write(
        &active,
        r#"{"runtime": {"library_path": "/usr/lib/other_runtime.so"}}"#,
    )
    .unwrap();
    let out = cli()
        .arg("install")
        .arg("--library")
        .arg(&lib)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&active).unwrap();
    assert!(
        text.contains(&format!("\"library_path\": \"{}\"", lib.display())),
        "{text}"
    );
    assert!(text.contains("\"file_format_version\": \"1.0.0\""));
    let backups: Vec<_> = std::fs::read_dir(active.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("before-leasehold"))
        .collect();
    assert_eq!(backups.len(), 1, "the other runtime's manifest is kept");
    // Again: nothing to do, no second backup.
    let out = cli()
        .arg("install")
        .arg("--library")
        .arg(&lib)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("already"));
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn print_env_leaves_the_active_runtime_alone() {
    let home = tmp("env");
    let lib = fake_library(&home);
    let out = cli()
        .args(["install", "--print-env", "--library"])
        .arg(&lib)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .trim()
        .strip_prefix("XR_RUNTIME_JSON=")
        .expect("one XR_RUNTIME_JSON= line");
    assert!(
        std::fs::read_to_string(path)
            .unwrap()
            .contains("library_path")
    );
    assert!(!home.join("config/openxr").exists());
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn a_missing_or_wrong_library_is_a_clear_error() {
    let home = tmp("bad");
    let out = cli()
        .args([
            "install",
            "--library",
            "/nonexistent/libleasehold_openxr.so",
        ])
        .env("XDG_CONFIG_HOME", home.join("config"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("build the runtime first"));
    let text = home.join("notes.txt");
    std::fs::write(&text, "not a library").unwrap();
    let out = cli()
        .arg("install")
        .arg("--library")
        .arg(&text)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a shared library"));
    assert!(!home.join("config/openxr").exists());
    std::fs::remove_dir_all(&home).unwrap();
}
