//! Interop with the Go reference, from its recorded exchanges
//! (tests/fixtures/go-reference, recorded from the Go reference): our signer
//! produces its exact bytes, our verifier accepts what it signed, our
//! tolerant parsers accept its wire format, and our server provisions from a
//! request its client made.

use crate::common;
use common::*;
use idprov::core::directory::{decode_ca, parse_directory, CaEncoding};
use idprov::core::messages::{ProvisionRequest, ProvisionResponse, Signed};
use idprov::core::sign::{self, KeyVariant, SignatureError};
use idprov::pki::{verify_chain, CertInfo, Usage};
use std::path::PathBuf;
use time::macros::datetime;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/go-reference")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn signer_reproduces_go_request_bytes() {
    for (name, secret) in [
        ("05-post-provreq-correct-secret.request.body", "secret1"),
        (
            "11-post-provreq-correct-after-51-wrong.request.body",
            "secret2",
        ),
        ("61-goclient.request.body", "gsecret1"),
    ] {
        let captured = fixture(name);
        let mut parsed: ProvisionRequest = serde_json::from_slice(&captured).unwrap();
        let ours = parsed.sign(secret, KeyVariant::Raw);
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(captured).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn signer_reproduces_go_response_bytes() {
    for (name, key) in [
        (
            "05-post-provreq-correct-secret.response.body",
            &b"secret1"[..],
        ),
        ("41-post-provreq-admin-cert-no-secret.response.body", b""),
        (
            "42-post-provreq-iotdevice-cert-renew-own.response.body",
            b"",
        ),
    ] {
        let captured = fixture(name);
        let mut parsed: ProvisionResponse = serde_json::from_slice(&captured).unwrap();
        let ours = parsed.sign_with_key(key);
        assert_eq!(ours, captured, "{name}");
        sign::verify_raw(&captured, key).unwrap();
    }
    // Waiting and Rejected are unsigned.
    for name in [
        "08-post-provreq-replay-same-secret.response.body",
        "10-post-provreq-wrong-secret.response.body",
    ] {
        let captured = fixture(name);
        let mut parsed: ProvisionResponse = serde_json::from_slice(&captured).unwrap();
        assert_eq!(parsed.unsigned(), captured);
        assert_eq!(
            sign::verify_raw(&captured, b"secret1"),
            Err(SignatureError::Empty)
        );
    }
}

#[test]
fn key_variants_and_canonical_forms_are_told_apart() {
    let b = fixture("13-post-provreq-key-sha256-of-secret.request.body");
    assert_eq!(
        sign::detect_variant(&b, "secret3"),
        Ok(KeyVariant::Sha256OfSecret)
    );
    assert!(sign::verify_raw(&b, b"secret3").is_err());
    // 15: reordered fields and an unknown one, signed over Go's canonical
    // form: raw blanking refuses it, re-serialisation (Go's method) accepts.
    let b = fixture("15-post-provreq-reordered-fields-unknown-field-raw-key.request.body");
    assert_eq!(
        sign::verify_raw(&b, b"secret3"),
        Err(SignatureError::Mismatch)
    );
    idprov::core::messages::verify_reserialized_request(&b, b"secret3").unwrap();
    // 14: signed without `mac`: neither method accepts it.
    let b = fixture("14-post-provreq-signed-without-mac-and-signature-fields.request.body");
    assert!(sign::verify_raw(&b, b"secret3").is_err());
    assert!(idprov::core::messages::verify_reserialized_request(&b, b"secret3").is_err());
}

#[test]
fn tolerant_parsers_accept_go_wire_format() {
    let d = parse_directory(
        &fixture("01-get-directory.response.body"),
        "https://127.0.0.1:18880/idprov/directory",
    )
    .unwrap();
    assert_eq!(d.ca_encoding, CaEncoding::Absent);
    assert_eq!(
        d.post_provision_request,
        "https://127.0.0.1:18880/idprov/provreq"
    );
    assert_eq!(
        d.post_oob_secret.as_deref(),
        Some("https://127.0.0.1:18880/idprov/oobsecret")
    );
    // Status: clientCert is base64 of the PEM bytes.
    let st: serde_json::Value =
        serde_json::from_slice(&fixture("06-get-status-admin-approved.response.body")).unwrap();
    let (pem, enc) = decode_ca(st.get("clientCert")).unwrap();
    assert_eq!(enc, CaEncoding::Base64Pem);
    let issued = String::from_utf8(fixture("issued-device1.pem")).unwrap();
    assert_eq!(pem.unwrap().trim(), issued.trim());
}

#[test]
fn go_issued_certificates_chain_and_share_a_serial() {
    let ca =
        idprov::pki::cert_der_from_pem(std::str::from_utf8(&fixture("ca.pem")).unwrap()).unwrap();
    let at = datetime!(2026-11-28 06:00 UTC);
    let mut serials = Vec::new();
    for name in ["issued-device1.pem", "issued-device2.pem"] {
        let der =
            idprov::pki::cert_der_from_pem(std::str::from_utf8(&fixture(name)).unwrap()).unwrap();
        verify_chain(&der, &ca, at, Usage::Client).unwrap();
        let info = CertInfo::from_der(&der).unwrap();
        assert_eq!(info.ou, ["iotdevice"]);
        serials.push(info.serial_hex);
    }
    // The reference's defect: serial = Unix time, duplicated within a second.
    assert_eq!(serials[0], serials[1]);
}

#[tokio::test]
async fn our_server_provisions_from_go_client_requests() {
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    for (name, device, secret) in [
        (
            "05-post-provreq-correct-secret.request.body",
            "device1",
            "secret1",
        ),
        ("61-goclient.request.body", "gdev1", "gsecret1"),
    ] {
        admin(&srv).post_oob(device, secret, "").await.unwrap();
        let r = provreq(&srv, fixture(name), None).await;
        assert_eq!(status_of(&r), "Approved", "{name}");
        sign::verify_raw(&r.body, secret.as_bytes()).unwrap();
    }
    srv.shutdown().await;
}

/// Go's `encoding/json` view of a `[]byte` member: base64 (standard
/// alphabet, padded) of the bytes, or `null`. Anything else fails as Go's
/// decoder does ("illegal base64 data at input byte N").
fn go_bytes(v: &serde_json::Value, what: &str) -> Result<Option<Vec<u8>>, String> {
    use base64::Engine;
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(Some)
            .map_err(|e| format!("{what}: illegal base64 data: {e}")),
        other => Err(format!("{what}: cannot unmarshal {other} into []byte")),
    }
}

/// Go's view of a `string` member (`null` leaves it empty).
fn go_string(v: &serde_json::Value, what: &str) -> Result<String, String> {
    match v {
        serde_json::Value::Null => Ok(String::new()),
        serde_json::Value::String(s) => Ok(s.clone()),
        other => Err(format!("{what}: cannot unmarshal {other} into string")),
    }
}

/// Decodes a directory as the Go reference's types do (PROTOCOL §10).
fn go_decode_directory(body: &[u8]) -> Result<(Vec<String>, Option<Vec<u8>>), String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut endpoints = Vec::new();
    for k in [
        "directory",
        "status",
        "postOobSecret",
        "postProvisionRequest",
    ] {
        endpoints.push(go_string(&v["endpoints"][k], k)?);
    }
    go_string(&v["version"], "version")?;
    let ca = go_bytes(&v["caCert"], "caCert")?;
    Ok((endpoints, ca))
}

/// `idprov server --wire go`: a Go-reference device or admin tool can read
/// every answer with its own types, and the Go client's recorded requests
/// provision end to end; the profile's default form fails the Go decoder
/// exactly as the issue reported.
#[tokio::test]
async fn wire_go_answers_decode_with_go_types_and_go_requests_provision() {
    // The default form: a Go decoder cannot read caCert.
    let d = tempfile::tempdir().unwrap();
    let srv = start(d.path()).await;
    let r = call(&srv, http::Method::GET, "/idprov/directory", None, None)
        .await
        .unwrap();
    let err = go_decode_directory(&r.body).unwrap_err();
    assert!(err.contains("illegal base64"), "{err}");
    srv.shutdown().await;

    let d = tempfile::tempdir().unwrap();
    let mut cfg = config(d.path());
    cfg.wire = idprov::server::Wire::Go;
    let srv = idprov::server::start(cfg).await.unwrap();
    let r = call(&srv, http::Method::GET, "/idprov/directory", None, None)
        .await
        .unwrap();
    let (endpoints, ca) = go_decode_directory(&r.body).unwrap();
    assert_eq!(endpoints[3], "/idprov/provreq");
    let ca = String::from_utf8(ca.expect("caCert offered")).unwrap();
    assert_eq!(ca.trim(), srv.ca_pem.trim());
    // Our own tolerant client still reads it.
    let parsed = parse_directory(&r.body, &srv.directory_url()).unwrap();
    assert_eq!(parsed.ca_encoding, CaEncoding::Base64Pem);

    // The Go client's recorded request (gdev1, signed with gsecret1).
    admin(&srv).post_oob("gdev1", "gsecret1", "").await.unwrap();
    let r = provreq(&srv, fixture("61-goclient.request.body"), None).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(go_string(&v["status"], "status").unwrap(), "Approved");
    let client_cert = go_string(&v["clientCert"], "clientCert").unwrap();
    go_string(&v["caCert"], "caCert").unwrap();
    assert!(v["retrySec"].is_u64() || v["retrySec"].is_null());
    sign::verify_raw(&r.body, b"gsecret1").unwrap();
    // The certificate is for the Go client's key and the device's name.
    let req: ProvisionRequest =
        serde_json::from_slice(&fixture("61-goclient.request.body")).unwrap();
    let info = CertInfo::from_pem(&client_cert).unwrap();
    assert_eq!(info.cn, ["gdev1"]);
    let key = idprov::pki::DevicePublicKey::from_pem(&req.public_key_pem).unwrap();
    assert_eq!(info.spki_der, key.spki_der());

    // Status, as the Go admin tool reads it: clientCert is a []byte.
    let st = call(
        &srv,
        http::Method::GET,
        "/idprov/status/gdev1",
        None,
        Some(&admin_identity(&srv)),
    )
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&st.body).unwrap();
    assert_eq!(go_string(&v["status"], "status").unwrap(), "Approved");
    let pem = go_bytes(&v["clientCert"], "clientCert").unwrap().unwrap();
    assert_eq!(String::from_utf8(pem).unwrap().trim(), client_cert.trim());
    // Security rules stay the profile's: the secret was one-time.
    let again = provreq(&srv, fixture("61-goclient.request.body"), None).await;
    assert_ne!(status_of(&again), "Approved");
    srv.shutdown().await;
}
