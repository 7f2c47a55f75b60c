//! Helpers shared by the integration tests: a real server on a free loopback
//! port with a temporary data dir, and raw HTTPS calls with any credential.
#![allow(dead_code)]

use http::Method;
use idprov::admin::AdminClient;
use idprov::core::messages::{ProvisionRequest, Signed};
use idprov::core::sign::KeyVariant;
use idprov::net::{self, HttpsResponse};
use idprov::server::{self, RunningServer, ServerConfig};
use idprov::tls::{client_config, ClientIdentity, ServerTrust};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(crate) const T: Duration = Duration::from_secs(10);

pub(crate) fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        mdns: false,
        waiting_retry_sec: 1,
        ..ServerConfig::default()
    }
}

pub(crate) async fn start(dir: &Path) -> RunningServer {
    server::start(config(dir)).await.expect("server starts")
}

pub(crate) fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

pub(crate) fn identity(dir: &Path, cert: &str, key: &str) -> ClientIdentity {
    ClientIdentity {
        cert_pem: read(dir, cert),
        key_pem: read(dir, key),
    }
}

pub(crate) fn admin_identity(srv: &RunningServer) -> ClientIdentity {
    identity(&srv.data_dir, "admin-cert.pem", "admin-key.pem")
}

pub(crate) fn admin(srv: &RunningServer) -> AdminClient {
    AdminClient {
        url: srv.directory_url(),
        ca_pem: srv.ca_pem.clone(),
        identity: admin_identity(srv),
        timeout: T,
    }
}

/// Sends a request to `path` with an optional client identity.
pub(crate) async fn call(
    srv: &RunningServer,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    id: Option<&ClientIdentity>,
) -> Result<HttpsResponse, net::NetError> {
    let cfg = Arc::new(client_config(&ServerTrust::Pinned(srv.ca_pem.clone()), id).unwrap());
    net::request(
        &format!("https://{}{}", srv.addr, path),
        method,
        body,
        cfg,
        T,
    )
    .await
}

/// A fresh P-256 key and a provisioning request for it, signed with `secret`.
pub(crate) fn signed_request(device: &str, secret: &str) -> (rcgen::KeyPair, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut r = ProvisionRequest {
        device_id: device.into(),
        ip: "127.0.0.1".into(),
        mac: String::new(),
        public_key_pem: key.public_key_pem(),
        csr_pem: None,
        signature: String::new(),
    };
    let body = r.sign(secret, KeyVariant::Raw);
    (key, body)
}

pub(crate) async fn provreq(
    srv: &RunningServer,
    body: Vec<u8>,
    id: Option<&ClientIdentity>,
) -> HttpsResponse {
    call(srv, Method::POST, "/idprov/provreq", Some(body), id)
        .await
        .expect("provreq answered")
}

pub(crate) fn json(resp: &HttpsResponse) -> serde_json::Value {
    serde_json::from_slice(&resp.body).expect("JSON body")
}

pub(crate) fn status_of(resp: &HttpsResponse) -> String {
    json(resp)["status"].as_str().unwrap_or("").to_string()
}

/// Validates a report.json value against docs/report.schema.json.
pub(crate) fn assert_meets_schema(v: &serde_json::Value, what: &str) {
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
}
