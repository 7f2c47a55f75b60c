//! The server, client, admin and vectors subcommands.

use super::args::*;
use super::{fail, read, EXIT_UNIMPLEMENTED, EXIT_USAGE};
use idprov::admin::AdminClient;
use idprov::client::{self, ClientOptions};
use idprov::server::{self, ServerConfig};
use idprov::tls::ClientIdentity;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub(super) async fn run_server(a: ServerArgs) -> ExitCode {
    if a.stack_floor {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => return fail(1, format!("cannot install SIGTERM handler: {e}")),
            };
        return tokio::select! {
            r = server::floor::serve(a.listen, &a.data_dir) => match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(EXIT_USAGE, e),
            },
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
            _ = term.recv() => ExitCode::SUCCESS,
        };
    }
    let cfg = ServerConfig {
        listen: a.listen,
        data_dir: a.data_dir.clone(),
        mdns: !a.no_mdns,
        cert_validity: time::Duration::days(a.cert_days as i64),
        path_prefix: a.path_prefix.clone(),
        wire: a.wire,
        ..ServerConfig::default()
    };
    let running = match server::start(cfg).await {
        Ok(r) => r,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let d = a.data_dir.display();
    outln!("idprov server: directory {}", running.directory_url());
    outln!("  CA:    {d}/ca.pem");
    outln!("  admin: {d}/admin-cert.pem {d}/admin-key.pem");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(1, format!("cannot install SIGTERM handler: {e}")),
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

pub(super) async fn run_client(a: ClientArgs) -> ExitCode {
    if let Ok(feature) = std::env::var("IDPROV_FEATURE") {
        if !feature.is_empty() && !client::FEATURES.contains(&feature.as_str()) {
            eprintln!("idprov: feature `{feature}` is not implemented");
            return ExitCode::from(EXIT_UNIMPLEMENTED);
        }
    }
    // The old name of the secret's variable still works.
    let secret = a
        .secret
        .clone()
        .or_else(|| std::env::var("IDPROV_CLIENT_SECRET").ok())
        .filter(|s| !s.is_empty());
    let mut opts = ClientOptions::new(&a.device_id, secret.as_deref(), &a.dir);
    opts.url = a.url.filter(|u| !u.is_empty());
    opts.ca = a.ca.filter(|p| !p.is_empty()).map(PathBuf::from);
    opts.timeout = Duration::from_secs(a.timeout);
    opts.choices = a.choice.iter().copied().collect();
    if let Some(addr) = a.control {
        return super::device::serve(opts, addr).await;
    }
    match client::run(&opts).await {
        Ok(o) => {
            outln!(
                "{} {}: serial {}, valid until {}, files in {}",
                if o.renewed { "renewed" } else { "provisioned" },
                a.device_id,
                o.serial,
                o.not_after
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                a.dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(client::ClientError::Usage(m)) => fail(EXIT_USAGE, m),
        Err(e) => fail(1, e),
    }
}

fn admin_client(c: &AdminConn) -> Result<AdminClient, String> {
    Ok(AdminClient {
        url: c.url.clone(),
        ca_pem: read(&c.ca, "--ca-cert")?,
        identity: ClientIdentity {
            cert_pem: read(&c.cert, "--admin-cert")?,
            key_pem: read(&c.key, "--admin-key")?,
        },
        timeout: Duration::from_secs(15),
    })
}

pub(super) async fn run_admin(a: AdminCommand) -> ExitCode {
    match a {
        AdminCommand::Oob {
            conn,
            device_id,
            secret,
            valid_until,
            file,
        } => {
            let c = match admin_client(&conn) {
                Ok(c) => c,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            if let Some(file) = file {
                return post_enrolment(&c, &file).await;
            }
            let (Some(device_id), Some(secret)) = (device_id, secret) else {
                return fail(
                    EXIT_USAGE,
                    "--device-id and --secret (or --file) are required",
                );
            };
            match c
                .post_oob(&device_id, &secret, valid_until.as_deref().unwrap_or(""))
                .await
            {
                Ok(()) => {
                    outln!("OOB secret posted for {device_id}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(1, e),
            }
        }
        AdminCommand::Status {
            conn,
            device_id,
            json,
        } => {
            let c = match admin_client(&conn) {
                Ok(c) => c,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            match c.status(&device_id).await {
                Ok(body) if json => {
                    outln!("{}", String::from_utf8_lossy(&body));
                    ExitCode::SUCCESS
                }
                Ok(body) => match status_summary(&body) {
                    Ok(text) => {
                        out!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(1, format!("the status answer is not readable: {e}")),
                },
                Err(e) => fail(1, e),
            }
        }
    }
}

/// `admin oob --file`: every row checked first (nothing is posted from a
/// list with a bad row: exit 2, each bad row named), then each row posted
/// and reported; a row the server refused is named and the run exits 1, so
/// no part of a list is left unposted without a word.
async fn post_enrolment(c: &AdminClient, file: &std::path::Path) -> ExitCode {
    let text = match read(file, "enrolment list") {
        Ok(t) => t,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let rows = match idprov::admin::parse_enrolment(&text, time::OffsetDateTime::now_utc()) {
        Ok(rows) => rows,
        Err(bad) => {
            for b in &bad {
                eprintln!("idprov: {}: {b}", file.display());
            }
            return fail(
                EXIT_USAGE,
                format!(
                    "{}: {} bad row(s); nothing was posted",
                    file.display(),
                    bad.len()
                ),
            );
        }
    };
    let mut failed = Vec::new();
    for r in &rows {
        match c.post_oob(&r.device_id, &r.secret, &r.valid_until).await {
            Ok(()) => outln!("line {}  {}  posted", r.line, r.device_id),
            Err(e) => {
                outln!("line {}  {}  FAILED: {e}", r.line, r.device_id);
                failed.push(r.line.to_string());
            }
        }
    }
    outln!(
        "{} of {} posted{}",
        rows.len() - failed.len(),
        rows.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; not posted: line(s) {}", failed.join(", "))
        }
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A status document in words: status, then the certificate's subject,
/// serial, validity and SHA-256 fingerprint (PEM or base64-of-PEM).
fn status_summary(body: &[u8]) -> Result<String, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let status = v["status"].as_str().unwrap_or("?");
    let mut o = format!(
        "device   {}\nstatus   {status}{}\n",
        v["deviceID"].as_str().unwrap_or("?"),
        // The profile answers Waiting for a device it has never heard of
        // too (PROTOCOL §7, status.latest): say what that means.
        if status == "Waiting" {
            " (no certificate issued to this device yet; the server does not tell an unknown device from one still waiting)"
        } else {
            ""
        }
    );
    let (pem, _) =
        idprov::core::directory::decode_ca(v.get("clientCert")).map_err(|e| e.to_string())?;
    if let Some(pem) = pem {
        let der = idprov::pki::cert_der_from_pem(&pem).map_err(|e| e.to_string())?;
        let info = idprov::pki::CertInfo::from_der(&der).map_err(|e| e.to_string())?;
        let t = |x: time::OffsetDateTime| {
            x.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        o.push_str(&format!(
            "subject  CN={} OU={}\nserial   {}\nvalid    {} → {}{}\nsha256   {}\n",
            info.cn.join(","),
            info.ou.join(","),
            info.serial_hex,
            t(info.not_before),
            t(info.not_after),
            if info.valid_at(time::OffsetDateTime::now_utc()) {
                ""
            } else {
                " (not valid now)"
            },
            idprov::pki::sha256_hex(&der)
        ));
    }
    Ok(o)
}

pub(super) fn run_vectors(v: VectorsCommand) -> ExitCode {
    match v {
        VectorsCommand::Generate { dir } => match idprov::vectors::generate(&dir) {
            Ok(files) => {
                outln!("wrote {} files to {}", files.len(), dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_USAGE, e),
        },
        VectorsCommand::Verify { dir } => match idprov::vectors::verify(&dir) {
            Ok(summary) => {
                out!("{}", idprov::vectors::summary_text(&summary));
                if summary.iter().all(|f| f.mismatches.is_empty()) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => fail(EXIT_USAGE, e),
        },
    }
}
