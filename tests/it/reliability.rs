//! Reliability and security of the reference server (short forms that run
//! in CI; the long soak's figures are in reports/reliability.md).

use crate::common;
use common::*;
use http::Method;
use idprov::pki::CertAuthority;
use idprov::server::{self, ServerConfig};
use idprov::tls::ClientIdentity;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_idprov");

fn cred(c: idprov::pki::Credential) -> ClientIdentity {
    ClientIdentity {
        cert_pem: c.cert.pem.clone(),
        key_pem: c.key_pem.to_string(),
    }
}

/// Every endpoint × every kind of credential → the expected answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorisation_table() {
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    let now = OffsetDateTime::now_utc();
    let ca = CertAuthority::from_pem(&srv.ca_pem, &read(d.path(), "ca-key.pem")).unwrap();
    let foreign = CertAuthority::generate("foreign", now).unwrap();
    let self_signed = {
        let c = CertAuthority::generate("admin", now).unwrap();
        ClientIdentity {
            cert_pem: c.cert_pem().into(),
            key_pem: c.key_pem().into(),
        }
    };
    let creds: Vec<(&str, Option<ClientIdentity>)> = vec![
        ("none", None),
        (
            "admin",
            Some(identity(d.path(), "admin-cert.pem", "admin-key.pem")),
        ),
        (
            "plugin",
            Some(identity(d.path(), "plugin-cert.pem", "plugin-key.pem")),
        ),
        (
            "own device",
            Some(cred(
                ca.issue_client("tbl-dev", "iotdevice", time::Duration::days(1), now)
                    .unwrap(),
            )),
        ),
        (
            "other device",
            Some(cred(
                ca.issue_client("tbl-other", "iotdevice", time::Duration::days(1), now)
                    .unwrap(),
            )),
        ),
        (
            "expired device",
            Some(cred(
                ca.issue_client(
                    "tbl-dev",
                    "iotdevice",
                    time::Duration::hours(1),
                    now - time::Duration::days(2),
                )
                .unwrap(),
            )),
        ),
        (
            "foreign-CA admin",
            Some(cred(foreign.issue_admin(now).unwrap())),
        ),
        ("self-signed", Some(self_signed)),
    ];
    // Expected: directory, oob, status, provreq for tbl-dev without a secret.
    let expected: &[(&str, [&str; 4])] = &[
        ("none", ["200", "401", "401", "Waiting"]),
        ("admin", ["200", "200", "200", "Approved"]),
        ("plugin", ["200", "200", "200", "Approved"]),
        ("own device", ["200", "403", "403", "Approved"]),
        ("other device", ["200", "403", "403", "Waiting"]),
        ("expired device", ["200", "401", "401", "Waiting"]),
        ("foreign-CA admin", ["tls", "tls", "tls", "tls"]),
        ("self-signed", ["tls", "tls", "tls", "tls"]),
    ];
    for ((name, id), (ename, want)) in creds.iter().zip(expected) {
        assert_eq!(name, ename);
        let oob = br#"{"deviceID":"tbl-x","oobSecret":"s","validUntil":""}"#.to_vec();
        let (_, req) = signed_request("tbl-dev", "no-secret-posted");
        let calls = [
            (Method::GET, "/idprov/directory", None),
            (Method::POST, "/idprov/oobsecret", Some(oob)),
            (Method::GET, "/idprov/status/tbl-dev", None),
            (Method::POST, "/idprov/provreq", Some(req)),
        ];
        for (i, (m, p, body)) in calls.into_iter().enumerate() {
            let got = match call(&srv, m.clone(), p, body, id.as_ref()).await {
                Err(_) => "tls".to_string(),
                Ok(r) if i == 3 && r.status == 200 => status_of(&r),
                Ok(r) => r.status.to_string(),
            };
            assert_eq!(got, want[i], "{name} → {m} {p}");
        }
    }
    srv.shutdown().await;
}

/// Many parallel wrong signatures for one device cannot exceed the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guess_limit_holds_under_concurrent_guessing() {
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    admin(&srv).post_oob("guessed", "right", "").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (_, body) = signed_request("guessed", &format!("wrong-{i}"));
        let cfg = std::sync::Arc::new(
            idprov::tls::client_config(&idprov::tls::ServerTrust::Pinned(srv.ca_pem.clone()), None)
                .unwrap(),
        );
        let url = format!("https://{}/idprov/provreq", srv.addr);
        tasks.push(tokio::spawn(async move {
            idprov::net::request(&url, Method::POST, Some(body), cfg, T).await
        }));
    }
    let mut rejected = 0;
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        match status_of(&r).as_str() {
            "Rejected" => rejected += 1,
            "Waiting" => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        rejected, 5,
        "exactly the guess limit is rejected, then the secret is gone"
    );
    let (_, right) = signed_request("guessed", "right");
    assert_eq!(status_of(&provreq(&srv, right, None).await), "Waiting");
    srv.shutdown().await;
}

/// Idle and trickling connections neither block an honest device nor
/// survive the header timeout; beyond the cap, connections are closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients() {
    let d = tempfile::tempdir().unwrap();
    let srv = server::start(ServerConfig {
        header_timeout: Duration::from_secs(2),
        ..config(d.path())
    })
    .await
    .unwrap();
    let addr = srv.addr;
    let idle: Vec<std::net::TcpStream> = (0..1000)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut tricklers: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    for t in &mut tricklers {
        let _ = t.write_all(&[0x16]);
    }
    admin(&srv).post_oob("among-idle", "s", "").await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut o = idprov::client::ClientOptions::new("among-idle", Some("s"), out.path());
    o.url = Some(srv.directory_url());
    let started = Instant::now();
    idprov::client::run(&o).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // After the header timeout the server has closed them all.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let mut closed = 0;
    for mut s in idle.into_iter().chain(tricklers) {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(0) => closed += 1,
            Ok(_) => closed += 1, // an alert, then close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    assert_eq!(
        closed, 1020,
        "connections still open after the header timeout"
    );
    srv.shutdown().await;

    // The connection cap answers the excess at once.
    let d = tempfile::tempdir().unwrap();
    let srv = server::start(ServerConfig {
        max_connections: 50,
        ..config(d.path())
    })
    .await
    .unwrap();
    let held: Vec<std::net::TcpStream> = (0..50)
        .map(|_| std::net::TcpStream::connect(srv.addr).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut excess = std::net::TcpStream::connect(srv.addr).unwrap();
    excess
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let t = Instant::now();
    let mut b = [0u8; 8];
    let n = excess.read(&mut b);
    assert!(
        matches!(n, Ok(0)) || n.is_err(),
        "excess connection not closed: {n:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "cap answered after {:?}",
        t.elapsed()
    );
    drop(held);
    srv.shutdown().await;
}

/// Plaintext HTTP and old TLS versions are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_old_tls_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(b"GET /idprov/directory HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "plaintext was served"
    );
    assert_eq!(
        buf.first(),
        Some(&0x15),
        "expected a TLS alert record, got {buf:?}"
    );
    for v in ["-tls1", "-tls1_1"] {
        let out = Command::new("timeout")
            .args([
                "20",
                "openssl",
                "s_client",
                v,
                "-connect",
                &srv.addr.to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("openssl (installed by .ci/run)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() || text.contains("Cipher is (NONE)"),
            "{v} handshake succeeded: {text}"
        );
    }
    srv.shutdown().await;
}

fn spawn_server(data: &std::path::Path, port: u16, log: Option<&std::path::Path>) -> Child {
    let mut c = Command::new(BIN);
    c.args([
        "server",
        "--no-mdns",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data);
    match log {
        Some(p) => {
            c.env("IDPROV_LOG", "trace")
                .stderr(std::fs::File::create(p).unwrap());
        }
        None => {
            c.stderr(Stdio::null());
        }
    }
    let child = c.stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A full flow at trace level: the logs never contain the secret or key
/// material.
#[test]
fn secrets_and_keys_never_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = free_port();
    let server_log = tmp.path().join("server.log");
    let mut srv = spawn_server(&data, port, Some(&server_log));
    let url = format!("https://127.0.0.1:{port}/idprov/directory");
    let secret = "Sup3r-S3cret-never-in-logs";
    let d = data.to_str().unwrap();
    let admin = Command::new(BIN)
        .env("IDPROV_LOG", "trace")
        .args([
            "admin",
            "oob",
            "--url",
            &url,
            "--ca",
            &format!("{d}/ca.pem"),
            "--cert",
            &format!("{d}/admin-cert.pem"),
            "--key",
            &format!("{d}/admin-key.pem"),
            "--device-id",
            "logged",
            "--secret",
            secret,
        ])
        .output()
        .unwrap();
    assert!(admin.status.success());
    let dev = tmp.path().join("dev");
    let client = Command::new(BIN)
        .env("IDPROV_LOG", "trace")
        .args([
            "client",
            "--url",
            &url,
            "--device-id",
            "logged",
            "--secret",
            secret,
            "--dir",
            dev.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let _ = srv.kill();
    let _ = srv.wait();
    let mut logs = std::fs::read_to_string(&server_log).unwrap();
    logs.push_str(&String::from_utf8_lossy(&admin.stderr));
    logs.push_str(&String::from_utf8_lossy(&client.stderr));
    assert!(logs.len() > 1000, "trace logging produced little output");
    assert!(!logs.contains(secret), "the secret appears in the logs");
    for key_file in [
        dev.join("key.pem"),
        data.join("ca-key.pem"),
        data.join("admin-key.pem"),
        data.join("server-key.pem"),
    ] {
        let pem = std::fs::read_to_string(&key_file).unwrap();
        for line in pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
        {
            assert!(
                !logs.contains(line),
                "key material of {} appears in the logs",
                key_file.display()
            );
        }
    }
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    for k in [
        "ca-key.pem",
        "admin-key.pem",
        "plugin-key.pem",
        "server-key.pem",
    ] {
        assert_eq!(mode(&data.join(k)), 0o600, "{k}");
    }
    assert_eq!(mode(&dev.join("key.pem")), 0o600);
}

/// SIGKILL at random moments under load: every certificate a client got an
/// Approved for is in the store and reported by status after restart, the
/// store opens without repair, serials stay unique.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_certificates_survive_sigkill() {
    const DEVICES: usize = 2000;
    const KILLS: usize = 5;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = free_port();
    let child = std::sync::Arc::new(std::sync::Mutex::new(spawn_server(&data, port, None)));
    let url = format!("https://127.0.0.1:{port}/idprov/directory");
    let ca_pem = std::fs::read_to_string(data.join("ca.pem")).unwrap();
    let admin_id = identity(&data, "admin-cert.pem", "admin-key.pem");
    let approved = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (url, ca_pem, admin_id, approved, next) = (
            url.clone(),
            ca_pem.clone(),
            admin_id.clone(),
            approved.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let admin = idprov::admin::AdminClient {
                url: url.clone(),
                ca_pem: ca_pem.clone(),
                identity: admin_id,
                timeout: Duration::from_secs(5),
            };
            let cfg = std::sync::Arc::new(
                idprov::tls::client_config(&idprov::tls::ServerTrust::Pinned(ca_pem), None)
                    .unwrap(),
            );
            let provreq = url.replace("/idprov/directory", "/idprov/provreq");
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= DEVICES {
                    break;
                }
                let device = format!("dur-{i}");
                let (_, body) = signed_request(&device, "s");
                let deadline = Instant::now() + Duration::from_secs(60);
                // Retry through restarts (secrets die with the process).
                while Instant::now() < deadline {
                    if admin.post_oob(&device, "s", "").await.is_err() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    match idprov::net::request(
                        &provreq,
                        Method::POST,
                        Some(body.clone()),
                        cfg.clone(),
                        Duration::from_secs(5),
                    )
                    .await
                    {
                        Ok(r) if r.status == 200 && status_of(&r) == "Approved" => {
                            let cert = json(&r)["clientCert"].as_str().unwrap().to_string();
                            approved.lock().unwrap().push((device.clone(), cert));
                            break;
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        }));
    }
    // Kill at pseudo-random moments while the load runs, then restart.
    let mut kills = 0;
    let mut seed = 0x9e3779b97f4a7c15u64;
    while kills < KILLS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(300 + seed % 900)).await;
        {
            let mut c = child.lock().unwrap();
            Command::new("kill")
                .args(["-KILL", &c.id().to_string()])
                .status()
                .unwrap();
            let _ = c.wait();
            *c = spawn_server(&data, port, None);
        }
        kills += 1;
    }
    for w in workers {
        w.await.unwrap();
    }
    let approved = approved.lock().unwrap().clone();
    assert_eq!(
        approved.len(),
        DEVICES,
        "every device eventually provisioned"
    );
    // Stop the server and open the store directly: no repair needed.
    {
        let mut c = child.lock().unwrap();
        let _ = c.kill();
        let _ = c.wait();
    }
    let store = idprov::server::store::CertStore::open(&data.join("certs.redb"))
        .expect("store opens after SIGKILL");
    let all = store.all().unwrap();
    let serials: HashSet<&str> = all.iter().map(|r| r.serial.as_str()).collect();
    assert_eq!(
        serials.len(),
        all.len(),
        "duplicate serials across restarts"
    );
    let pems: HashSet<&str> = all.iter().map(|r| r.pem.as_str()).collect();
    for (device, cert) in &approved {
        assert!(
            pems.contains(cert.as_str()),
            "Approved certificate of {device} lost"
        );
    }
    drop(store);
    // And status reports them, after a restart.
    let mut c = spawn_server(&data, port, None);
    let admin = idprov::admin::AdminClient {
        url: url.clone(),
        ca_pem: ca_pem.clone(),
        identity: admin_id.clone(),
        timeout: Duration::from_secs(5),
    };
    for (device, _) in approved.iter().step_by(97) {
        let st: serde_json::Value =
            serde_json::from_slice(&admin.status(device).await.unwrap()).unwrap();
        assert_eq!(st["status"], "Approved", "{device}");
    }
    let _ = c.kill();
    let _ = c.wait();
    eprintln!(
        "{} devices, {} kills survived, {} certificates stored",
        approved.len(),
        KILLS,
        all.len()
    );
}
