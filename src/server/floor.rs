//! The stack floor (`idprov bench --floor`): a bare server on the reference
//! server's TLS configuration, listen backlog, runtime and HTTP stack that
//! does the least a provisioning needs — completes the handshake, reads one
//! request, signs one device certificate and answers a fixed body. No
//! secrets, no decision, no database. Driven by the same load generator as
//! the real server, its CPU per provisioning is what the stack costs; the
//! real server's figure beside it is what IDProv itself adds.

use super::datadir::DataDir;
use super::{listen, san_ips, StartError};
use crate::core::messages::{
    DirectoryMessage, Endpoints, ProvisionResponse, ProvisionStatus, VERSION,
};
use crate::pki::{CertAuthority, DevicePublicKey};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

struct Floor {
    ca: CertAuthority,
    key: DevicePublicKey,
    directory: Bytes,
    directory_path: String,
    provreq_path: String,
    answer: Bytes,
}

/// Binds `listen` (credentials in `data_dir`, created as the server does)
/// and serves the stack floor until the task is dropped.
pub async fn serve(listen_on: SocketAddr, data_dir: &Path) -> Result<(), StartError> {
    let dd = DataDir::open_or_create(
        data_dir,
        &["localhost".to_string()],
        &san_ips(listen_on.ip()),
    )?;
    let tls = crate::tls::server_config(dd.ca.cert_pem(), &dd.server_cert_pem, &dd.server_key_pem)?;
    let listener =
        listen(listen_on, super::ServerConfig::default().max_connections).map_err(|source| {
            StartError::Bind {
                addr: listen_on,
                source,
            }
        })?;
    let paths = Endpoints::under("/idprov");
    let directory = crate::core::json::to_go_json(&DirectoryMessage {
        endpoints: paths.clone(),
        ca_cert: dd.ca.cert_pem().to_string(),
        version: VERSION.into(),
        services: BTreeMap::new(),
        extensions: Vec::new(),
    });
    let gen_err = |e: crate::pki::PkiError| StartError::Thread(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(|e| StartError::Thread(e.to_string()))?;
    let key = DevicePublicKey::from_pem(&key.public_key_pem()).map_err(gen_err)?;
    let now = time::OffsetDateTime::now_utc();
    let sample = dd
        .ca
        .issue_device("stack-floor", &key, time::Duration::days(30), now)
        .map_err(gen_err)?;
    // An Approved answer of the real size, computed once.
    let approved = crate::core::json::to_go_json(&ProvisionResponse {
        retry_sec: 0,
        status: ProvisionStatus::Approved,
        ca_cert: dd.ca.cert_pem().to_string(),
        client_cert: sample.pem,
        signature: "c3RhY2sgZmxvb3Igc2lnbmF0dXJlIHBsYWNlaG9sZGVyIQ==".into(),
    });
    let floor = Arc::new(Floor {
        ca: dd.ca,
        key,
        directory: directory.into(),
        directory_path: paths.directory.clone(),
        provreq_path: paths.post_provision_request.clone(),
        answer: approved.into(),
    });
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, floor) = (acceptor.clone(), floor.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| answer(req, floor.clone()));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Some(Duration::from_secs(10)))
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    floor: Arc<Floor>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(413, Bytes::new())),
    };
    std::hint::black_box(&body);
    let out = if path == floor.directory_path {
        floor.directory.clone()
    } else if path == floor.provreq_path {
        let signed = floor.ca.issue_device(
            "stack-floor",
            &floor.key,
            time::Duration::days(30),
            time::OffsetDateTime::now_utc(),
        );
        std::hint::black_box(&signed);
        floor.answer.clone()
    } else {
        Bytes::from_static(b"{}")
    };
    Ok(reply(200, out))
}

fn reply(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}
