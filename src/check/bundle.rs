//! Sign-off bundles: one `.tar.gz` with every report format and its
//! evidence, how the run was made (command line, tool version and git
//! revision, seed), who was checked (TLS certificate and CA fingerprints,
//! the directory document), the catalogue of cases and rules that ran, and
//! a SHA-256 manifest of every file — what a vendor hands to a customer or
//! a certification body. [`verify`] checks the manifest.

use super::report::Report;
pub use crate::pki::sha256_hex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The manifest's file name inside the bundle.
pub const MANIFEST: &str = "MANIFEST.sha256";

/// Who was checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetIdentity {
    /// Directory URL, or the device shim template.
    pub target: String,
    /// SHA-256 of the DER of the server's TLS certificate (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_certificate_sha256: Option<String>,
    /// The server's TLS certificate (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_certificate_pem: Option<String>,
    /// SHA-256 of the DER of the CA given with `--ca-cert` (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_sha256: Option<String>,
    /// The directory document as served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
}

/// How the run was made (`run.json` in the bundle).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// The exact command line.
    pub command_line: Vec<String>,
    /// `idprov`.
    pub tool: String,
    /// Tool version.
    pub version: String,
    /// Git revision the tool was built from (or `unknown`).
    pub git_revision: String,
    /// The run's seed.
    pub seed: u64,
    /// Who was checked.
    pub target: Vec<TargetIdentity>,
}

/// Git revision this binary was built from.
pub fn git_revision() -> &'static str {
    option_env!("IDPROV_GIT_REVISION").unwrap_or("unknown")
}

/// Reads the identity of a server target: fingerprints of its TLS
/// certificate and CA, and its directory as served.
pub async fn server_identity(t: &super::runner::ServerTarget) -> TargetIdentity {
    let mut id = TargetIdentity {
        target: t.url.clone(),
        ca_sha256: crate::pki::cert_der_from_pem(&t.ca_pem)
            .ok()
            .map(|d| sha256_hex(&d)),
        ..TargetIdentity::default()
    };
    let cfg = crate::tls::client_config(&crate::tls::ServerTrust::LeapOfFaith, None);
    if let Ok(cfg) = cfg {
        let r = crate::net::request(
            &t.url,
            http::Method::GET,
            None,
            std::sync::Arc::new(cfg),
            std::time::Duration::from_secs(10),
        )
        .await;
        if let Ok(r) = r {
            if let Some(leaf) = r.server_certs.first() {
                id.tls_certificate_sha256 = Some(sha256_hex(leaf));
                id.tls_certificate_pem = Some(crate::pki::pem_encode("CERTIFICATE", leaf));
            }
            id.directory = Some(String::from_utf8_lossy(&r.body).into_owned());
        }
    }
    id
}

/// The cases of `report` and the rules they cite, as `catalogue.json`.
fn catalogue_json(report: &Report) -> Result<Vec<u8>, String> {
    let all = super::scenario::catalogue().map_err(|e| e.to_string())?;
    let cases: Vec<&super::scenario::Scenario> = all
        .iter()
        .filter(|s| report.cases.iter().any(|c| c.id == s.id))
        .collect();
    let mut rules = BTreeMap::new();
    for s in &cases {
        for r in &s.rules {
            if let Some(rule) = crate::spec::rule(r) {
                rules.insert(r.clone(), rule);
            }
        }
    }
    serde_json::to_vec_pretty(&serde_json::json!({
        "cases": cases,
        "rules": rules.values().collect::<Vec<_>>(),
    }))
    .map_err(|e| e.to_string())
}

/// Writes the bundle: the report files of `report_dir`, `run.json`,
/// `catalogue.json`, `PROTOCOL.md` and the manifest, into `out` (written
/// whole to a temporary file and renamed, so a failure leaves nothing
/// half-written).
pub fn write(report_dir: &Path, report: &Report, run: &RunInfo, out: &Path) -> Result<(), String> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for name in [
        "report.json",
        "junit.xml",
        "report.html",
        "report.md",
        "PROTOCOL.html",
    ] {
        let p = report_dir.join(name);
        if p.exists() {
            let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            files.push((name.into(), b));
        }
    }
    files.push((
        "run.json".into(),
        serde_json::to_vec_pretty(run).map_err(|e| e.to_string())?,
    ));
    files.push(("catalogue.json".into(), catalogue_json(report)?));
    files.push((
        "PROTOCOL.md".into(),
        crate::spec::PROTOCOL_MD.as_bytes().to_vec(),
    ));
    let manifest: String = files
        .iter()
        .map(|(n, b)| format!("{}  {n}\n", sha256_hex(b)))
        .collect();
    files.push((MANIFEST.into(), manifest.into_bytes()));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes.as_slice())
            .map_err(|e| format!("bundle: {e}"))?;
    }
    let gz = tar.into_inner().map_err(|e| format!("bundle: {e}"))?;
    let bytes = gz.finish().map_err(|e| format!("bundle: {e}"))?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    crate::fsutil::write_atomic(out, &bytes, crate::fsutil::MODE_PUBLIC)
        .map_err(|e| format!("{}: {e}", out.display()))
}

/// What a verified bundle says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Files checked against the manifest.
    pub files: Vec<String>,
    /// The report inside.
    pub report: Report,
    /// How the run was made.
    pub run: RunInfo,
}

/// Checks every file of the bundle at `path` against its manifest. The error
/// names the first file that is missing, extra or changed.
pub fn verify(path: &Path) -> Result<Verified, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let entries = ar
        .entries()
        .map_err(|e| format!("{}: not a bundle: {e}", path.display()))?;
    for e in entries {
        let mut e = e.map_err(|e| format!("{}: not a bundle: {e}", path.display()))?;
        if e.header().entry_type().is_dir() {
            continue;
        }
        let name = e
            .path()
            .map_err(|e| format!("bundle entry name: {e}"))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut b = Vec::new();
        // Bundles are small (reports); cap what one entry may hold.
        e.by_ref()
            .take(256 * 1024 * 1024)
            .read_to_end(&mut b)
            .map_err(|e| format!("bundle entry {name}: {e}"))?;
        files.insert(name, b);
    }
    let manifest = files
        .get(MANIFEST)
        .ok_or_else(|| format!("bundle has no {MANIFEST}"))?;
    let manifest = String::from_utf8_lossy(manifest).into_owned();
    let mut listed = Vec::new();
    for (n, line) in manifest.lines().enumerate() {
        let (digest, name) = line
            .split_once("  ")
            .ok_or_else(|| format!("{MANIFEST} line {} is not `sha256  name`", n + 1))?;
        let got = files
            .get(name)
            .ok_or_else(|| format!("{name}: listed in the manifest but missing"))?;
        if sha256_hex(got) != digest {
            return Err(format!(
                "{name}: SHA-256 does not match the manifest (changed)"
            ));
        }
        listed.push(name.to_string());
    }
    if let Some(extra) = files
        .keys()
        .find(|k| *k != MANIFEST && !listed.iter().any(|l| l == *k))
    {
        return Err(format!("{extra}: in the bundle but not in the manifest"));
    }
    let report: Report = serde_json::from_slice(
        files
            .get("report.json")
            .ok_or("bundle has no report.json")?,
    )
    .map_err(|e| format!("report.json: {e}"))?;
    let run: RunInfo =
        serde_json::from_slice(files.get("run.json").ok_or("bundle has no run.json")?)
            .map_err(|e| format!("run.json: {e}"))?;
    Ok(Verified {
        files: listed,
        report,
        run,
    })
}

/// The summary `idprov bundle verify` prints.
pub fn summary(v: &Verified) -> String {
    let r = &v.report;
    let s = &r.summary;
    let mut o = format!(
        "bundle OK: {} files match the manifest\nidprov {} (git {}) · role {} · seed {}\ncommand: {}\n",
        v.files.len(),
        v.run.version,
        v.run.git_revision,
        r.role,
        v.run.seed,
        v.run.command_line.join(" ")
    );
    for t in &v.run.target {
        o.push_str(&format!(
            "target {}{}{}\n",
            t.target,
            t.tls_certificate_sha256
                .as_ref()
                .map(|d| format!(" · TLS certificate sha256 {d}"))
                .unwrap_or_default(),
            t.ca_sha256
                .as_ref()
                .map(|d| format!(" · CA sha256 {d}"))
                .unwrap_or_default()
        ));
    }
    o.push_str(&format!(
        "result {:?} · {} pass, {} fail, {} skip, {} info\n",
        r.outcome.result, s.pass, s.fail, s.skip, s.info
    ));
    o
}
