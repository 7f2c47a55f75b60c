//! The reference server over real TLS on loopback: PROTOCOL §3–§7.

use crate::common;
use common::*;
use http::Method;
use idprov::core::sign;
use idprov::pki::{CertAuthority, CertInfo};
use idprov::tls::ClientIdentity;
use time::{Duration, OffsetDateTime};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn directory_is_served_with_ca_and_extensions() {
    let d = tmp();
    let srv = start(d.path()).await;
    let r = call(&srv, Method::GET, "/idprov/directory", None, None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), Some("application/json"));
    let v = json(&r);
    assert_eq!(v["caCert"].as_str().unwrap(), srv.ca_pem);
    assert_eq!(v["version"], "1");
    assert_eq!(v["extensions"][0], "csr");
    assert_eq!(v["endpoints"]["postProvisionRequest"], "/idprov/provreq");
    srv.shutdown().await;
}

#[tokio::test]
async fn secret_approves_once_with_signed_response() {
    let d = tmp();
    let srv = start(d.path()).await;
    admin(&srv).post_oob("dev-1", "s3cret", "").await.unwrap();
    let (key, body) = signed_request("dev-1", "s3cret");
    let r = provreq(&srv, body.clone(), None).await;
    assert_eq!(status_of(&r), "Approved");
    sign::verify_raw(&r.body, b"s3cret").expect("response signed with the secret");
    let v = json(&r);
    assert!(v["retrySec"].as_u64().unwrap() > 0);
    assert_eq!(v["caCert"].as_str().unwrap(), srv.ca_pem);
    let info = CertInfo::from_pem(v["clientCert"].as_str().unwrap()).unwrap();
    assert_eq!(info.cn, ["dev-1"]);
    assert_eq!(info.ou, ["iotdevice"]);
    assert!(info.client_auth);
    assert_eq!(
        info.spki_der,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
    assert!(info.serial_bits() >= 64);
    // One-time: the same request again finds no secret.
    let r = provreq(&srv, body, None).await;
    assert_eq!(status_of(&r), "Waiting");
    assert_eq!(json(&r)["clientCert"], "");
    srv.shutdown().await;
}

#[tokio::test]
async fn waiting_then_rejected_then_guess_limit() {
    let d = tmp();
    let srv = start(d.path()).await;
    let (_, right) = signed_request("dev-2", "right");
    let r = provreq(&srv, right.clone(), None).await;
    assert_eq!(status_of(&r), "Waiting");
    assert!(json(&r)["retrySec"].as_u64().unwrap() > 0);
    admin(&srv).post_oob("dev-2", "right", "").await.unwrap();
    for i in 0..5 {
        let (_, wrong) = signed_request("dev-2", &format!("wrong{i}"));
        let r = provreq(&srv, wrong, None).await;
        assert_eq!(status_of(&r), "Rejected");
        let v = json(&r);
        assert_eq!(v["clientCert"], "");
        assert_eq!(v["signature"], "");
    }
    // The limit of 5 discarded the secret: the right signature no longer works.
    let r = provreq(&srv, right.clone(), None).await;
    assert_eq!(status_of(&r), "Waiting");
    admin(&srv).post_oob("dev-2", "right", "").await.unwrap();
    assert_eq!(status_of(&provreq(&srv, right, None).await), "Approved");
    srv.shutdown().await;
}

#[tokio::test]
async fn expired_secret_is_unusable() {
    // On the server's clock, moved by hand: no real sleep.
    use idprov::server::clock::{Clock, ManualClock};
    let d = tmp();
    let clock = ManualClock::at(OffsetDateTime::now_utc());
    let srv = idprov::server::start(idprov::server::ServerConfig {
        clock: std::sync::Arc::new(clock.clone()),
        ..common::config(d.path())
    })
    .await
    .unwrap();
    let until = (clock.now() + Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    admin(&srv).post_oob("dev-3", "s", &until).await.unwrap();
    admin(&srv).post_oob("dev-4", "s", &until).await.unwrap();
    // A second before its end a secret still works (the clock is read)...
    clock.advance(Duration::seconds(1));
    let (_, body) = signed_request("dev-4", "s");
    assert_eq!(status_of(&provreq(&srv, body, None).await), "Approved");
    // ...and once past it, it does not.
    clock.advance(Duration::seconds(2));
    let (_, body) = signed_request("dev-3", "s");
    assert_eq!(status_of(&provreq(&srv, body, None).await), "Waiting");
    srv.shutdown().await;
}

/// The reference's own bound on the secrets it holds (not a profile rule,
/// so no conformance case can see it; the mutation analysis found it
/// untested): when full, expired secrets are dropped first; a post for a
/// new device to a store still full is refused, a re-post for a device it
/// holds is not; the secrets it keeps still work.
#[tokio::test]
async fn the_secret_store_is_bounded_and_purges_expired_first() {
    use idprov::server::clock::{Clock, ManualClock};
    let d = tmp();
    let clock = ManualClock::at(OffsetDateTime::now_utc());
    let srv = idprov::server::start(idprov::server::ServerConfig {
        clock: std::sync::Arc::new(clock.clone()),
        max_secrets: 3,
        ..common::config(d.path())
    })
    .await
    .unwrap();
    let rfc = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let soon = rfc(clock.now() + Duration::seconds(10));
    let later = rfc(clock.now() + Duration::hours(1));
    let a = admin(&srv);
    a.post_oob("cap-1", "s1", &soon).await.unwrap();
    a.post_oob("cap-2", "s2", &later).await.unwrap();
    a.post_oob("cap-3", "s3", &later).await.unwrap();
    // Full, nothing expired: a new device is refused, a held one re-posts.
    assert!(a.post_oob("cap-4", "s4", &later).await.is_err());
    a.post_oob("cap-3", "s3b", &later).await.unwrap();
    // cap-1's secret expires: the next post makes room by dropping it.
    clock.advance(Duration::seconds(11));
    a.post_oob("cap-4", "s4", &later).await.unwrap();
    for (device, secret) in [("cap-2", "s2"), ("cap-3", "s3b"), ("cap-4", "s4")] {
        let (_, body) = signed_request(device, secret);
        assert_eq!(
            status_of(&provreq(&srv, body, None).await),
            "Approved",
            "{device}"
        );
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn renewal_rules() {
    let d = tmp();
    let srv = start(d.path()).await;
    let ca = CertAuthority::from_pem(&srv.ca_pem, &read(d.path(), "ca-key.pem")).unwrap();
    let now = OffsetDateTime::now_utc();
    let own = ca
        .issue_client("dev-r", "iotdevice", Duration::days(1), now)
        .unwrap();
    let own_id = ClientIdentity {
        cert_pem: own.cert.pem.clone(),
        key_pem: own.key_pem.to_string(),
    };
    // Own certificate: renewal without a secret, response signed with "".
    let (_, body) = signed_request("dev-r", "irrelevant");
    let r = provreq(&srv, body, Some(&own_id)).await;
    assert_eq!(status_of(&r), "Approved");
    sign::verify_raw(&r.body, b"").unwrap();
    // Another device's certificate authorises nothing.
    let (_, other) = signed_request("dev-x", "irrelevant");
    assert_eq!(
        status_of(&provreq(&srv, other, Some(&own_id)).await),
        "Waiting"
    );
    // Expired own certificate: as if none was sent.
    let old = ca
        .issue_client(
            "dev-r",
            "iotdevice",
            Duration::hours(1),
            now - Duration::days(2),
        )
        .unwrap();
    let old_id = ClientIdentity {
        cert_pem: old.cert.pem.clone(),
        key_pem: old.key_pem.to_string(),
    };
    let (_, body) = signed_request("dev-r", "irrelevant");
    assert_eq!(
        status_of(&provreq(&srv, body, Some(&old_id)).await),
        "Waiting"
    );
    // A foreign CA's certificate is refused at the TLS layer.
    let foreign = CertAuthority::generate("foreign", now).unwrap();
    let f = foreign
        .issue_client("dev-r", "iotdevice", Duration::days(1), now)
        .unwrap();
    let f_id = ClientIdentity {
        cert_pem: f.cert.pem.clone(),
        key_pem: f.key_pem.to_string(),
    };
    let (_, body) = signed_request("dev-r", "irrelevant");
    let res = call(
        &srv,
        Method::POST,
        "/idprov/provreq",
        Some(body),
        Some(&f_id),
    )
    .await;
    assert!(
        res.is_err(),
        "foreign-CA certificate must not get an answer: {res:?}"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn admin_and_plugin_provision_without_secret() {
    let d = tmp();
    let srv = start(d.path()).await;
    for (cert, key) in [
        ("admin-cert.pem", "admin-key.pem"),
        ("plugin-cert.pem", "plugin-key.pem"),
    ] {
        let id = identity(d.path(), cert, key);
        let (_, body) = signed_request("made-by-admin", "no-secret-posted");
        let r = provreq(&srv, body, Some(&id)).await;
        assert_eq!(status_of(&r), "Approved", "{cert}");
        sign::verify_raw(&r.body, b"").unwrap();
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn oob_and_status_authorisation() {
    let d = tmp();
    let srv = start(d.path()).await;
    let body = br#"{"deviceID":"dev-a","oobSecret":"s","validUntil":""}"#.to_vec();
    let ca = CertAuthority::from_pem(&srv.ca_pem, &read(d.path(), "ca-key.pem")).unwrap();
    let now = OffsetDateTime::now_utc();
    let dev = ca
        .issue_client("dev-a", "iotdevice", Duration::days(1), now)
        .unwrap();
    let dev_id = ClientIdentity {
        cert_pem: dev.cert.pem.clone(),
        key_pem: dev.key_pem.to_string(),
    };
    let plugin = identity(d.path(), "plugin-cert.pem", "plugin-key.pem");
    let cases: [(Option<&ClientIdentity>, u16); 3] =
        [(None, 401), (Some(&dev_id), 403), (Some(&plugin), 200)];
    for (id, want) in cases {
        let r = call(
            &srv,
            Method::POST,
            "/idprov/oobsecret",
            Some(body.clone()),
            id,
        )
        .await
        .unwrap();
        assert_eq!(r.status, want, "oob with {:?}", id.map(|_| "cert"));
        let r = call(&srv, Method::GET, "/idprov/status/dev-a", None, id)
            .await
            .unwrap();
        assert_eq!(r.status, want, "status");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn malformed_input_gets_400_and_limits() {
    let d = tmp();
    let srv = start(d.path()).await;
    let adm = admin_identity(&srv);
    let key = rcgen::KeyPair::generate().unwrap().public_key_pem();
    let req = |id: &str| {
        serde_json::to_vec(&serde_json::json!({"deviceID": id, "ip": "127.0.0.1", "mac": "", "publicKeyPEM": key, "signature": "x"})).unwrap()
    };
    let long = "a".repeat(200);
    let bad_bodies: Vec<Vec<u8>> = vec![
        b"{not json".to_vec(),
        b"[]".to_vec(),
        br#"{"deviceID":"d","ip":"127.0.0.1","signature":"x"}"#.to_vec(),
        br#"{"ip":"127.0.0.1","publicKeyPEM":"k","signature":"x"}"#.to_vec(),
        serde_json::to_vec(&serde_json::json!({"deviceID": "d", "publicKeyPEM": key, "signature": "x"})).unwrap(),
        serde_json::to_vec(&serde_json::json!({"deviceID": "d", "ip": "127.0.0.1", "publicKeyPEM": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "signature": "x"})).unwrap(),
        serde_json::to_vec(&serde_json::json!({"deviceID": 7, "ip": "127.0.0.1", "publicKeyPEM": key})).unwrap(),
        req("../x"),
        req("a/b"),
        req(&long),
    ];
    for b in bad_bodies {
        let r = provreq(&srv, b.clone(), None).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&b));
        assert!(json(&r)["error"].is_string());
    }
    for b in [
        &br#"{"deviceID":"../x","oobSecret":"s"}"#[..],
        br#"{"deviceID":"d","oobSecret":""}"#,
        br#"{"deviceID":"d","oobSecret":"s","validUntil":"2001-01-01T00:00:00Z"}"#,
        br#"{"deviceID":"d","oobSecret":"s","validUntil":"garbage"}"#,
        br#"{"deviceID":"d","oobSecret":"s","validUntil":5}"#,
    ] {
        let r = call(
            &srv,
            Method::POST,
            "/idprov/oobsecret",
            Some(b.to_vec()),
            Some(&adm),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(b));
    }
    let r = call(&srv, Method::GET, "/idprov/status/..", None, Some(&adm))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // 405 with Allow, 404.
    for (m, p, allow) in [
        (Method::GET, "/idprov/provreq", "POST"),
        (Method::DELETE, "/idprov/directory", "GET"),
        (Method::PUT, "/idprov/status/x", "GET"),
        (Method::GET, "/idprov/oobsecret", "POST"),
    ] {
        let r = call(&srv, m.clone(), p, None, Some(&adm)).await.unwrap();
        assert_eq!(r.status, 405, "{m} {p}");
        assert_eq!(r.headers.get("allow").unwrap(), allow);
    }
    for p in ["/", "/idprov", "/idprov/directory/", "/idprov/unknown"] {
        assert_eq!(
            call(&srv, Method::GET, p, None, None).await.unwrap().status,
            404,
            "{p}"
        );
    }
    // 413 on a 1 MiB body.
    let big = vec![b' '; 1 << 20];
    let r = call(&srv, Method::POST, "/idprov/provreq", Some(big), None)
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    // Still healthy afterwards.
    admin(&srv).post_oob("after", "s", "").await.unwrap();
    let (_, body) = signed_request("after", "s");
    assert_eq!(status_of(&provreq(&srv, body, None).await), "Approved");
    srv.shutdown().await;
}

#[tokio::test]
async fn restart_forgets_secrets_and_keeps_certificates() {
    let d = tmp();
    let srv = start(d.path()).await;
    let ca_before = srv.ca_pem.clone();
    admin(&srv).post_oob("kept", "s", "").await.unwrap();
    let (_, body) = signed_request("kept", "s");
    let approved = json(&provreq(&srv, body, None).await)["clientCert"]
        .as_str()
        .unwrap()
        .to_string();
    admin(&srv).post_oob("forgotten", "s", "").await.unwrap();
    srv.shutdown().await;

    let srv = start(d.path()).await;
    assert_eq!(srv.ca_pem, ca_before, "CA is reused");
    let (_, body) = signed_request("forgotten", "s");
    assert_eq!(status_of(&provreq(&srv, body, None).await), "Waiting");
    let st: serde_json::Value =
        serde_json::from_slice(&admin(&srv).status("kept").await.unwrap()).unwrap();
    assert_eq!(st["status"], "Approved");
    assert_eq!(st["clientCert"].as_str().unwrap(), approved);
    let st: serde_json::Value =
        serde_json::from_slice(&admin(&srv).status("forgotten").await.unwrap()).unwrap();
    assert_eq!(st["status"], "Waiting");
    srv.shutdown().await;
}

#[tokio::test]
async fn serials_are_unique_under_concurrency() {
    let d = tmp();
    let srv = start(d.path()).await;
    let adm = admin_identity(&srv);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (_, body) = signed_request(&format!("c{i}"), "x");
        let cfg = std::sync::Arc::new(
            idprov::tls::client_config(
                &idprov::tls::ServerTrust::Pinned(srv.ca_pem.clone()),
                Some(&adm),
            )
            .unwrap(),
        );
        let url = format!("https://{}/idprov/provreq", srv.addr);
        tasks.push(tokio::spawn(async move {
            idprov::net::request(&url, Method::POST, Some(body), cfg, T).await
        }));
    }
    let mut serials = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        let info = CertInfo::from_pem(json(&r)["clientCert"].as_str().unwrap()).unwrap();
        assert!(serials.insert(info.serial_hex));
    }
    assert_eq!(srv.shared.store.count().unwrap(), 32);
    srv.shutdown().await;
}

/// The `http2_alpn` honest variant is real: a client that offers `h2`
/// gets HTTP/2 and the directory over it; one that offers nothing still
/// gets HTTP/1.1.
#[tokio::test]
async fn http2_variant_speaks_h2_to_a_client_that_asks() {
    let d = tmp();
    let mut cfg = config(d.path());
    cfg.choices.http2_alpn = true;
    let srv = idprov::server::start(cfg).await.unwrap();
    let mut tls =
        idprov::tls::client_config(&idprov::tls::ServerTrust::Pinned(srv.ca_pem.clone()), None)
            .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("https://{}/idprov/directory", srv.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["version"], "1");
    // Without ALPN: HTTP/1.1 as before.
    let r = call(&srv, Method::GET, "/idprov/directory", None, None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    srv.shutdown().await;
}

/// The `header_stall_408` honest variant answers 408 to a head that
/// stalls; the reference closes silently.
#[tokio::test]
async fn header_stall_variant_answers_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for answer_408 in [true, false] {
        let d = tmp();
        let mut cfg = config(d.path());
        cfg.header_timeout = std::time::Duration::from_millis(500);
        cfg.choices.header_stall_408 = answer_408;
        let srv = idprov::server::start(cfg).await.unwrap();
        let tls =
            idprov::tls::client_config(&idprov::tls::ServerTrust::Pinned(srv.ca_pem.clone()), None)
                .unwrap();
        let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
            .connect(name, tcp)
            .await
            .unwrap();
        stream
            .write_all(b"GET /idprov/directory HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut got),
        )
        .await
        .expect("the server ends the connection");
        let text = String::from_utf8_lossy(&got);
        if answer_408 {
            assert!(text.starts_with("HTTP/1.1 408 "), "{text:?} {read:?}");
        } else {
            assert!(got.is_empty(), "{text:?}");
        }
        srv.shutdown().await;
    }
}

/// The `tls13-only` and `tls12-only` honest variants offer one version
/// alone: a client offering only the other cannot connect.
#[tokio::test]
async fn tls_version_variants_offer_one_version() {
    use idprov::tls::TlsVersions;
    for (server, other) in [
        (TlsVersions::Only13, TlsVersions::Only12),
        (TlsVersions::Only12, TlsVersions::Only13),
    ] {
        let d = tmp();
        let mut cfg = config(d.path());
        cfg.choices.tls = server;
        let srv = idprov::server::start(cfg).await.unwrap();
        let trust = idprov::tls::ServerTrust::Pinned(srv.ca_pem.clone());
        let url = srv.directory_url();
        for (client, works) in [(server, true), (other, false), (TlsVersions::Both, true)] {
            let tls = idprov::tls::client_config_with(&trust, None, client).unwrap();
            let r = idprov::net::request(
                &url,
                Method::GET,
                None,
                std::sync::Arc::new(tls),
                std::time::Duration::from_secs(5),
            )
            .await;
            assert_eq!(
                r.is_ok(),
                works,
                "{server:?} server, {client:?} client: {r:?}"
            );
        }
        srv.shutdown().await;
    }
}
