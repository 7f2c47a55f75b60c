//! The reference device client (PROTOCOL §9) against the real server and
//! against hostile servers that break one rule each.

use crate::common;
use common::*;
use idprov::client::{self, ClientError, ClientOptions};
use idprov::pki::{verify_chain, CertInfo, Usage};
use idprov::suite::hostile::{self, Bug, Bugs, SignMode, Tamper};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

fn opts(url: &str, device: &str, secret: &str, dir: &Path) -> ClientOptions {
    let mut o = ClientOptions::new(device, Some(secret), dir);
    o.url = Some(url.to_string());
    o.timeout = Duration::from_secs(20);
    o.request_timeout = Duration::from_secs(5);
    o
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn provisions_renews_and_writes_files_safely() {
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    admin(&srv).post_oob("dev-1", "s3cret", "").await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = client::run(&opts(&srv.directory_url(), "dev-1", "s3cret", out.path()))
        .await
        .unwrap();
    assert!(!o.renewed);
    assert_eq!(files_in(out.path()), ["ca.pem", "cert.pem", "key.pem"]);
    let mode = std::fs::metadata(out.path().join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(read(out.path(), "ca.pem"), srv.ca_pem);
    let cert = read(out.path(), "cert.pem");
    let info = CertInfo::from_pem(&cert).unwrap();
    assert_eq!(info.cn, ["dev-1"]);
    let der = idprov::pki::cert_der_from_pem(&cert).unwrap();
    let ca = idprov::pki::cert_der_from_pem(&srv.ca_pem).unwrap();
    verify_chain(&der, &ca, OffsetDateTime::now_utc(), Usage::Client).unwrap();
    // The key file holds the key the certificate was issued for.
    let key = rcgen::KeyPair::from_pem(&read(out.path(), "key.pem")).unwrap();
    assert_eq!(
        info.spki_der,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );

    // Renewal: no secret, mutual TLS with the current certificate.
    let mut r = opts(&srv.directory_url(), "dev-1", "", out.path());
    r.secret = None;
    let o2 = client::run(&r).await.unwrap();
    assert!(o2.renewed);
    assert_ne!(o2.serial, o.serial);
    let renewed = CertInfo::from_pem(&read(out.path(), "cert.pem")).unwrap();
    assert_eq!(renewed.serial_hex, o2.serial);
    let st: serde_json::Value =
        serde_json::from_slice(&admin(&srv).status("dev-1").await.unwrap()).unwrap();
    assert_eq!(
        st["clientCert"].as_str().unwrap(),
        read(out.path(), "cert.pem")
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn waits_then_succeeds_once_the_secret_is_posted() {
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    let out = tempfile::tempdir().unwrap();
    let o = opts(&srv.directory_url(), "late", "s", out.path());
    let task = tokio::spawn(async move { client::run(&o).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    admin(&srv).post_oob("late", "s", "").await.unwrap();
    let outcome = task.await.unwrap().unwrap();
    assert!(outcome.requests >= 2, "sent {} requests", outcome.requests);
    srv.shutdown().await;
}

#[tokio::test]
async fn wrong_secret_is_rejected_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    admin(&srv).post_oob("dev-w", "right", "").await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = client::run(&opts(&srv.directory_url(), "dev-w", "wrong", out.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Rejected), "{err}");
    assert!(files_in(out.path()).is_empty());
    srv.shutdown().await;
}

/// Runs the client against a hostile server and returns the error.
async fn refused(bugs: Bugs) -> (ClientError, hostile::HostileServer) {
    let h = hostile::start("127.0.0.1:0".parse().unwrap(), "s", bugs)
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let res = client::run(&opts(&h.url(), "dev-h", "s", out.path())).await;
    let err = match res {
        Ok(o) => panic!("client accepted a hostile answer: {o:?}"),
        Err(e) => e,
    };
    assert!(files_in(out.path()).is_empty(), "files left after {err}");
    (err, h)
}

#[tokio::test]
async fn honest_hostile_server_is_accepted() {
    // The baseline the refusals below are measured against.
    let h = hostile::start("127.0.0.1:0".parse().unwrap(), "s", Bugs::default())
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    client::run(&opts(&h.url(), "dev-h", "s", out.path()))
        .await
        .unwrap();
    let sent = h.requests();
    let prov = sent.iter().find(|r| r.path == "/idprov/provreq").unwrap();
    assert!(!String::from_utf8_lossy(&prov.body).contains("\"s\""));
    idprov::core::sign::verify_raw(&prov.body, b"s").unwrap();
}

#[tokio::test]
async fn refuses_every_tampered_response() {
    // (misbehaviour, what the refusal must name)
    let cases: Vec<(Bugs, &str)> = vec![
        (
            Bugs {
                sign: SignMode::OtherSecret,
                ..Bugs::default()
            },
            "signature does not match",
        ),
        (
            Bugs {
                sign: SignMode::Sha256Key,
                ..Bugs::default()
            },
            "signature does not match",
        ),
        (
            Bugs {
                sign: SignMode::Unsigned,
                ..Bugs::default()
            },
            "signature is empty",
        ),
        (
            Bugs {
                tamper: Some(Tamper::ClientCert),
                ..Bugs::default()
            },
            "signature does not match",
        ),
        (
            Bugs {
                tamper: Some(Tamper::CaCert),
                ..Bugs::default()
            },
            "signature does not match",
        ),
        (
            Bugs {
                tamper: Some(Tamper::Status),
                ..Bugs::default()
            },
            "signature does not match",
        ),
        (
            Bugs {
                tamper: Some(Tamper::RetrySec),
                ..Bugs::default()
            },
            "signature does not match",
        ),
        (Bugs::of(&[Bug::OtherCn]), "certificate is for CN"),
        (Bugs::of(&[Bug::OtherKey]), "does not carry our public key"),
        (Bugs::of(&[Bug::OtherCa]), "UnknownIssuer"),
        (Bugs::of(&[Bug::Expired]), "CertExpired"),
        (Bugs::of(&[Bug::Reject, Bug::CertOnRejected]), "rejected"),
        (Bugs::of(&[Bug::TlsOtherCa]), "TLS handshake"),
        (Bugs::of(&[Bug::NoCaInDirectory]), "offers no CA"),
    ];
    for (bugs, why) in cases {
        let label = format!("{bugs:?}");
        let (err, _h) = refused(bugs).await;
        assert!(
            err.to_string().contains(why),
            "{label}: refused for another reason: {err}"
        );
    }
}

#[tokio::test]
async fn pinning_refuses_a_second_server_with_another_ca() {
    let b = hostile::start("127.0.0.1:0".parse().unwrap(), "s", Bugs::default())
        .await
        .unwrap();
    let bugs = Bugs {
        provreq_url: Some(b.provreq_url()),
        ..Bugs::default()
    };
    let (err, _a) = refused(bugs).await;
    assert!(matches!(err, ClientError::Net(_)), "{err}");
    assert!(b.requests().is_empty(), "nothing reaches the second server");
}

#[tokio::test]
async fn preprovisioned_ca_refuses_other_server_before_sending() {
    let h = hostile::start("127.0.0.1:0".parse().unwrap(), "s", Bugs::default())
        .await
        .unwrap();
    let ca_dir = tempfile::tempdir().unwrap();
    let other = idprov::pki::CertAuthority::generate("mine", OffsetDateTime::now_utc()).unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, other.cert_pem()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut o = opts(&h.url(), "dev-p", "s", out.path());
    o.ca = Some(ca_file);
    let err = client::run(&o).await.unwrap_err();
    assert!(matches!(err, ClientError::Net(_)), "{err}");
    assert!(h.requests().is_empty(), "sent {:?}", h.requests());
    assert!(files_in(out.path()).is_empty());
}

#[tokio::test]
async fn waiting_hint_is_honoured_and_bounded() {
    let bugs = Bugs {
        waiting_times: 2,
        waiting_retry_sec: 1,
        ..Bugs::default()
    };
    let h = hostile::start("127.0.0.1:0".parse().unwrap(), "s", bugs)
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    client::run(&opts(&h.url(), "dev-wt", "s", out.path()))
        .await
        .unwrap();
    let prov: Vec<_> = h
        .requests()
        .into_iter()
        .filter(|r| r.path == "/idprov/provreq")
        .collect();
    assert_eq!(prov.len(), 3);
    for w in prov.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(950),
            "retried too early"
        );
    }
    // A huge retrySec is capped by the client's own limit, then its timeout.
    let bugs = Bugs {
        waiting_times: 100,
        waiting_retry_sec: 1_000_000,
        ..Bugs::default()
    };
    let h = hostile::start("127.0.0.1:0".parse().unwrap(), "s", bugs)
        .await
        .unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let mut o = opts(&h.url(), "dev-wt", "s", out2.path());
    o.timeout = Duration::from_secs(3);
    o.max_retry = Duration::from_secs(1);
    let started = std::time::Instant::now();
    assert!(matches!(
        client::run(&o).await,
        Err(ClientError::StillWaiting(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn sends_a_csr_when_advertised() {
    let bugs = Bugs::of(&[Bug::AdvertiseCsr]);
    let h = hostile::start("127.0.0.1:0".parse().unwrap(), "s", bugs)
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    client::run(&opts(&h.url(), "dev-c", "s", out.path()))
        .await
        .unwrap();
    let prov = h
        .requests()
        .into_iter()
        .find(|r| r.path == "/idprov/provreq")
        .unwrap();
    let req: idprov::core::messages::ProvisionRequest = serde_json::from_slice(&prov.body).unwrap();
    let key = idprov::pki::DevicePublicKey::from_pem(&req.public_key_pem).unwrap();
    idprov::pki::verify_csr(req.csr_pem.as_deref().unwrap(), &key).unwrap();
    // And the real server accepts it (it advertises csr).
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    admin(&srv).post_oob("dev-c", "s", "").await.unwrap();
    let out2 = tempfile::tempdir().unwrap();
    client::run(&opts(&srv.directory_url(), "dev-c", "s", out2.path()))
        .await
        .unwrap();
    srv.shutdown().await;
}

/// The client's honest choices take effect: an Ed25519 key, no CSR, TLS
/// 1.3 only, ALPN, a MAC address; and renewal with the same key keeps it.
#[tokio::test]
async fn honest_client_choices_take_effect() {
    use idprov::client::choices::ClientChoice;
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    admin(&srv).post_oob("dev-c", "s3cret", "").await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut o = opts(&srv.directory_url(), "dev-c", "s3cret", out.path());
    o.choices = [
        ClientChoice::Ed25519Key,
        ClientChoice::NoCsr,
        ClientChoice::Tls13Only,
        ClientChoice::AlpnHttp11,
        ClientChoice::SendMac,
        ClientChoice::KeepKeyOnRenewal,
    ]
    .into_iter()
    .collect();
    client::run(&o).await.unwrap();
    let key_pem = read(out.path(), "key.pem");
    let info = CertInfo::from_pem(&read(out.path(), "cert.pem")).unwrap();
    let spki = idprov::pki::DevicePublicKey::from_der(&info.spki_der).unwrap();
    assert_eq!(spki.kind(), idprov::pki::KeyKind::Ed25519);
    let mut r = o.clone();
    r.secret = None;
    assert!(client::run(&r).await.unwrap().renewed);
    assert_eq!(read(out.path(), "key.pem"), key_pem, "the key was kept");
    let renewed = CertInfo::from_pem(&read(out.path(), "cert.pem")).unwrap();
    assert_eq!(renewed.spki_der, info.spki_der);
    assert_ne!(renewed.serial_hex, info.serial_hex);
    srv.shutdown().await;
}
