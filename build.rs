//! Embeds every conformance case under `scenarios/` into the binary, so the
//! suite runs anywhere; adding a case means adding a file.

use std::fs;
use std::path::Path;

fn collect(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p.to_string_lossy().into_owned());
        }
    }
}

/// The git revision the binary is built from, for sign-off bundles.
fn git_revision() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let head = manifest.join(".git/HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed={}", head.display());
        if let Ok(h) = fs::read_to_string(&head) {
            if let Some(r) = h.trim().strip_prefix("ref: ") {
                println!(
                    "cargo:rerun-if-changed={}",
                    manifest.join(".git").join(r).display()
                );
            }
        }
    }
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(manifest)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=IDPROV_GIT_REVISION={rev}");
}

fn main() {
    git_revision();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files);
    let mut code = String::from("/// Embedded scenario files: (path relative to scenarios/, contents).\npub static SCENARIOS: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
        let rel = Path::new(f)
            .strip_prefix(&root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| f.clone());
        code.push_str(&format!("    ({rel:?}, include_str!({f:?})),\n"));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("scenarios.rs");
    fs::write(out, code).expect("write scenarios.rs");
}
