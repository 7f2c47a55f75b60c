//! A provisioning server that misbehaves on purpose, one switch per
//! misbehaviour (in the manner of BoGo's ProtocolBugs), used to check that a
//! device refuses what PROTOCOL §9 says it must. Built on the protocol core
//! and PKI of the reference server; records every request it receives.

use super::faults::{Switch, Switches};
pub use super::perturb::Perturb;
use super::perturb::{json, Material};
use crate::core::messages::{
    ProvisionResponse, ProvisionStatus, Signed, DIRECTORY_PATH, EXT_CSR, OOB_PATH, PROVREQ_PATH,
    STATUS_TEMPLATE, VERSION,
};
use crate::core::sign::KeyVariant;
use crate::pki::{CertAuthority, DevicePublicKey};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use time::{Duration, OffsetDateTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::LazyConfigAcceptor;

/// How the response to an approved request is signed (a case file's
/// `sign`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignMode {
    /// With the device's secret, raw key (honest).
    #[default]
    Honest,
    /// With a different secret.
    OtherSecret,
    /// With SHA-256 of the secret as key.
    Sha256Key,
    /// Empty signature.
    Unsigned,
}

/// A field changed after the response was signed (a case file's `tamper`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tamper {
    /// `clientCert` replaced by another valid certificate for the device.
    ClientCert,
    /// `caCert` replaced by another CA.
    CaCert,
    /// `status` changed.
    Status,
    /// `retrySec` changed.
    RetrySec,
}

/// One way the suite's server departs from the reference, named like the
/// other fault catalogues (the name is the key of a case file's `bugs`
/// block). Some are legal choices a device must survive (`reject`,
/// `advertise-csr`), the rest are bugs it must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Bug {
    /// Issue the certificate for another CN.
    OtherCn,
    /// Issue the certificate for another public key.
    OtherKey,
    /// Issue the certificate from a CA other than the advertised one.
    OtherCa,
    /// Issue an already expired certificate.
    Expired,
    /// Issue a certificate whose validity starts an hour from now.
    NotYetValid,
    /// Issue the certificate for the device ID in upper case.
    CnCase,
    /// Answer Rejected.
    Reject,
    /// Attach a certificate to Rejected.
    CertOnRejected,
    /// Present a TLS certificate from another CA than the advertised one.
    TlsOtherCa,
    /// Advertise the `csr` extension.
    AdvertiseCsr,
    /// List an extension this profile does not define (and not `csr`).
    UnknownExtension,
    /// Publish no `caCert` in the directory.
    NoCaInDirectory,
    /// Accept TCP connections and never send a byte (transport).
    Silent,
    /// Send every HTTP answer one byte a second (transport).
    Trickle,
}

impl Bug {
    /// Every switch.
    pub const ALL: &'static [Bug] = &[
        Bug::OtherCn,
        Bug::OtherKey,
        Bug::OtherCa,
        Bug::Expired,
        Bug::NotYetValid,
        Bug::CnCase,
        Bug::Reject,
        Bug::CertOnRejected,
        Bug::TlsOtherCa,
        Bug::AdvertiseCsr,
        Bug::UnknownExtension,
        Bug::NoCaInDirectory,
        Bug::Silent,
        Bug::Trickle,
    ];
}

impl Switch for Bug {
    fn catalogue() -> &'static [Bug] {
        Bug::ALL
    }
}

/// How the suite's server behaves: the switches on, the two exclusive
/// choices about the answer's signature, and the honest parameters a case
/// sets. `Default` is an honest server.
#[derive(Debug, Clone, Default)]
pub struct Bugs {
    /// The switches that are on.
    pub switches: Switches<Bug>,
    /// How to sign Approved responses.
    pub sign: SignMode,
    /// Change a field after signing.
    pub tamper: Option<Tamper>,
    /// Answer Waiting this many times first.
    pub waiting_times: u32,
    /// `retrySec` with Waiting.
    pub waiting_retry_sec: u64,
    /// Publish this URL as the provisioning endpoint (a second server).
    pub provreq_url: Option<String>,
    /// Serve a wire form a conforming client must accept.
    pub wire: Option<WireForm>,
    /// Change one element of the first Approved answer.
    pub perturb: Option<Perturb>,
}

impl Bugs {
    /// An otherwise honest server with these switches on.
    pub fn of(on: &[Bug]) -> Self {
        Bugs {
            switches: Switches::of(on),
            ..Bugs::default()
        }
    }

    /// Whether `b` is on.
    pub fn has(&self, b: Bug) -> bool {
        self.switches.has(b)
    }
}

/// Wire forms that PROTOCOL §3/§10 tell clients to accept. Not bugs: a
/// client that fails on one of them does not interoperate (a case file's
/// `wire`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireForm {
    /// Directory `caCert` as base64 of the PEM bytes (a Go `[]byte`).
    CaBase64,
    /// Directory `caCert` is `null` (the Go reference); the device needs a
    /// pre-provisioned CA.
    CaNull,
    /// Endpoints as absolute `https://` URLs instead of paths.
    EndpointUrls,
    /// The older revision's `postOOB` key instead of `postOobSecret`.
    PostOobKey,
    /// Version `1.3` instead of `1`.
    #[serde(rename = "version-1x")]
    Version1x,
    /// Unknown extra members in the directory and in the answer (the
    /// answer's signature covers them).
    ExtraFields,
    /// Members in another order in the directory and in the answer (signed
    /// over the bytes sent).
    Reordered,
}

/// One request the device made.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Whether a client certificate was presented.
    pub client_cert: bool,
    /// When it arrived, relative to the server's start.
    pub at: std::time::Duration,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// Whether the answer may have carried a certificate: every answer but
    /// an error, a Waiting and a Rejected without `clientCert`.
    pub cert_sent: bool,
}

/// Whether an answer `body` with `status` can have carried a certificate
/// (conservative: only the answers that certainly did not are false).
fn may_carry_certificate(status: u16, body: &[u8]) -> bool {
    if status != 200 {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return true;
    };
    let no_cert = v
        .get("clientCert")
        .is_none_or(|c| c.as_str().is_some_and(str::is_empty));
    let certainly_none = no_cert
        && matches!(
            v.get("status").and_then(|s| s.as_str()),
            Some("Waiting" | "Rejected")
        );
    !certainly_none
}

#[cfg(test)]
mod answer_tests {
    use super::may_carry_certificate;

    #[test]
    fn only_answers_that_certainly_carry_no_certificate_are_said_to() {
        assert!(may_carry_certificate(
            200,
            br#"{"status":"Approved","clientCert":"x"}"#
        ));
        assert!(may_carry_certificate(
            200,
            br#"{"status":"Rejected","clientCert":"x"}"#
        ));
        assert!(may_carry_certificate(200, b"not json"));
        assert!(may_carry_certificate(200, br#"{"status":"Approved"}"#));
        assert!(!may_carry_certificate(
            200,
            br#"{"status":"Waiting","clientCert":""}"#
        ));
        assert!(!may_carry_certificate(200, br#"{"status":"Rejected"}"#));
        assert!(!may_carry_certificate(400, br#"{"clientCert":"x"}"#));
    }
}

/// What happened below HTTP: TLS connections begun and given up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsCounts {
    /// ClientHellos received (a device began a TLS handshake).
    pub hellos: u32,
    /// Handshakes that began with a ClientHello and then failed (the device
    /// refused the server's certificate, or gave up).
    pub refused: u32,
    /// Handshakes begun and not yet finished either way.
    pub pending: u32,
    /// TCP connections accepted.
    pub connections: u32,
    /// ClientHellos that offered a version below TLS 1.2.
    pub legacy_hellos: u32,
    /// The lowest version any ClientHello offered (0: none seen).
    pub lowest_offered: u16,
    /// Bytes of plaintext (anything but a TLS record) received on the
    /// plaintext port.
    pub plaintext_bytes: u32,
    /// TLS ClientHellos received on the plaintext port (a device that
    /// discovery sent there and that spoke TLS, as it must); each gets a
    /// plain HTTP 400, as a plaintext server answers.
    pub plaintext_port_hellos: u32,
    /// Exchanges in progress now: handshakes half-way, requests being
    /// answered, and connections to a silent or trickling server the
    /// device still holds open (an idle kept-alive connection is not one).
    pub busy: u32,
}

/// Counts one exchange in progress in [`TlsCounts::busy`] while it lives.
struct Busy(Arc<State>);

impl Busy {
    fn new(st: &Arc<State>) -> Self {
        st.tls.lock().unwrap_or_else(|p| p.into_inner()).busy += 1;
        Busy(st.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut c = self.0.tls.lock().unwrap_or_else(|p| p.into_inner());
        c.busy = c.busy.saturating_sub(1);
    }
}

struct State {
    bugs: Bugs,
    secret: String,
    ca: CertAuthority,
    other_ca: CertAuthority,
    waiting_left: Mutex<u32>,
    /// Whether the perturbation was served (it is served once).
    perturbed: std::sync::atomic::AtomicBool,
    requests: Mutex<Vec<Recorded>>,
    tls: Mutex<TlsCounts>,
    started: Instant,
    addr: SocketAddr,
}

/// A running hostile server.
pub struct HostileServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// A plaintext TCP port on the same host that records what arrives and
    /// answers nothing: a device must never send there.
    pub plaintext_addr: SocketAddr,
    /// PEM of the CA it advertises.
    pub ca_pem: String,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    advert: Option<crate::server::mdns::Advertisement>,
}

impl HostileServer {
    /// Directory URL.
    pub fn url(&self) -> String {
        format!("https://{}{}", self.addr, DIRECTORY_PATH)
    }

    /// The directory URL with `http://`, on the plaintext port.
    pub fn plaintext_url(&self) -> String {
        format!("http://{}{}", self.plaintext_addr, DIRECTORY_PATH)
    }

    /// Provisioning URL.
    pub fn provreq_url(&self) -> String {
        format!("https://{}{}", self.addr, PROVREQ_PATH)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// TLS connections begun and given up so far.
    pub fn tls_counts(&self) -> TlsCounts {
        *self.state.tls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (at most `limit`) until no TLS handshake is half-way, so that a
    /// device that has exited is judged on everything it did.
    pub async fn settle(&self, limit: std::time::Duration) {
        let deadline = Instant::now() + limit;
        while self.tls_counts().pending > 0 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Stops the server.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Issues a device certificate from the server's CA (to give a device a
    /// certificate set before a renewal case).
    pub fn issue_device(&self, device_id: &str, key: &DevicePublicKey) -> Result<String, String> {
        self.state
            .ca
            .issue_device(
                device_id,
                key,
                Duration::days(30),
                OffsetDateTime::now_utc(),
            )
            .map(|c| c.pem)
            .map_err(|e| e.to_string())
    }

    /// Advertises this server over DNS-SD (`_idprov._tcp`, TXT `path`) —
    /// or, with `plaintext`, its plaintext port as if it were the server.
    pub fn advertise(&mut self, plaintext: bool) -> Result<(), String> {
        let name = format!("idprov-suite-{}", self.addr.port());
        let at = if plaintext {
            self.plaintext_addr
        } else {
            self.addr
        };
        let a = crate::server::mdns::Advertisement::start(&name, at).map_err(|e| e.to_string())?;
        self.advert = Some(a);
        Ok(())
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(a) = self.advert.take() {
            a.stop();
        }
    }
}

/// Starts a hostile server on `listen` that knows the device's `secret`.
pub async fn start(
    listen: SocketAddr,
    secret: &str,
    bugs: Bugs,
) -> Result<HostileServer, Box<dyn std::error::Error + Send + Sync>> {
    let now = OffsetDateTime::now_utc();
    let ca = CertAuthority::generate("hostile CA", now)?;
    let other_ca = CertAuthority::generate("other CA", now)?;
    let tls_ca = if bugs.has(Bug::TlsOtherCa) {
        &other_ca
    } else {
        &ca
    };
    let server = tls_ca.issue_server(
        &["localhost".into()],
        &[listen.ip(), "127.0.0.1".parse()?, "::1".parse()?],
        now,
    )?;
    let cfg = crate::tls::server_config(tls_ca.cert_pem(), &server.cert.pem, &server.key_pem)?;
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let ca_pem = ca.cert_pem().to_string();
    let state = Arc::new(State {
        waiting_left: Mutex::new(bugs.waiting_times),
        perturbed: std::sync::atomic::AtomicBool::new(false),
        bugs,
        secret: secret.to_string(),
        ca,
        other_ca,
        requests: Mutex::new(Vec::new()),
        tls: Mutex::new(TlsCounts::default()),
        started: Instant::now(),
        addr,
    });
    let (stop, mut stop_rx) = watch::channel(false);
    let plain = TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?;
    let plaintext_addr = plain.local_addr()?;
    {
        let st = state.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = tokio::select! {
                    _ = stop_rx.changed() => break,
                    r = plain.accept() => match r { Ok(x) => x, Err(_) => continue },
                };
                let st = st.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let limit = std::time::Duration::from_secs(10);
                    let mut first = true;
                    while let Ok(Ok(n)) = tokio::time::timeout(limit, tcp.read(&mut buf)).await {
                        if n == 0 {
                            break;
                        }
                        if first && buf[0] == 0x16 {
                            // TLS spoken to a plaintext server: it answers
                            // in HTTP, which ends the handshake at once.
                            st.tls
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .plaintext_port_hellos += 1;
                            let _ = tcp
                                .write_all(
                                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                                )
                                .await;
                            break;
                        }
                        first = false;
                        st.tls
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .plaintext_bytes += n as u32;
                    }
                });
            }
        });
    }
    let cfg = Arc::new(cfg);
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = stop_rx.changed() => break,
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            };
            let cfg = cfg.clone();
            let st = st.clone();
            tokio::spawn(async move {
                let limit = std::time::Duration::from_secs(10);
                st.tls.lock().unwrap_or_else(|p| p.into_inner()).connections += 1;
                if st.bugs.has(Bug::Silent) {
                    // Hold the connection open and answer nothing, until
                    // the device gives up (what it sends is dropped).
                    let _busy = Busy::new(&st);
                    let mut tcp = tcp;
                    let mut buf = [0u8; 1024];
                    let hold = async {
                        use tokio::io::AsyncReadExt;
                        while let Ok(n) = tcp.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                        }
                    };
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(120), hold).await;
                    return;
                }
                if let Some(offered) = peek_hello(&tcp).await {
                    let lowest = offered.iter().copied().min().unwrap_or(0);
                    let mut c = st.tls.lock().unwrap_or_else(|p| p.into_inner());
                    if lowest != 0 && (c.lowest_offered == 0 || lowest < c.lowest_offered) {
                        c.lowest_offered = lowest;
                    }
                    if lowest != 0 && lowest < crate::suite::wire::TLS12 {
                        c.legacy_hellos += 1;
                    }
                }
                let lazy = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
                let handshake = Busy::new(&st);
                let Ok(Ok(start)) = tokio::time::timeout(limit, lazy).await else {
                    return;
                };
                {
                    let mut c = st.tls.lock().unwrap_or_else(|p| p.into_inner());
                    c.hellos += 1;
                    c.pending += 1;
                }
                let done = tokio::time::timeout(limit, start.into_stream(cfg)).await;
                let tls = {
                    let mut c = st.tls.lock().unwrap_or_else(|p| p.into_inner());
                    c.pending = c.pending.saturating_sub(1);
                    match done {
                        Ok(Ok(tls)) => Some(tls),
                        _ => {
                            c.refused += 1;
                            None
                        }
                    }
                };
                drop(handshake);
                let Some(tls) = tls else {
                    return;
                };
                let has_cert = tls.get_ref().1.peer_certificates().is_some();
                let st_trickle = st.bugs.has(Bug::Trickle);
                let st_conn = st.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let st = st.clone();
                    async move { Ok::<_, std::convert::Infallible>(serve(req, &st, has_cert).await) }
                });
                if st_trickle {
                    let _busy = Busy::new(&st_conn);
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(Trickle::new(tls)), svc)
                        .await;
                } else {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                }
            });
        }
    });
    Ok(HostileServer {
        addr,
        plaintext_addr,
        ca_pem,
        state,
        stop,
        advert: None,
    })
}

async fn serve(
    req: Request<Incoming>,
    st: &Arc<State>,
    client_cert: bool,
) -> Response<Full<Bytes>> {
    let _busy = Busy::new(st);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return json(StatusCode::PAYLOAD_TOO_LARGE, b"{}".to_vec()),
    };
    let resp = match path.as_str() {
        DIRECTORY_PATH => json(StatusCode::OK, directory(st)),
        PROVREQ_PATH => provision(st, &body),
        _ => json(StatusCode::NOT_FOUND, b"{}".to_vec()),
    };
    let (parts, answer) = resp.into_parts();
    let answer = match answer.collect().await {
        Ok(c) => c.to_bytes(),
        Err(never) => match never {},
    };
    let cert_sent = path == PROVREQ_PATH && may_carry_certificate(parts.status.as_u16(), &answer);
    let resp = Response::from_parts(parts, Full::new(answer));
    st.requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Recorded {
            method,
            path,
            body,
            client_cert,
            at: st.started.elapsed(),
            status: resp.status().as_u16(),
            cert_sent,
        });
    resp
}

fn directory(st: &State) -> Vec<u8> {
    use base64::Engine;
    use serde_json::Value;
    let wire = st.bugs.wire;
    let at = |path: &str| -> Value {
        Value::String(if wire == Some(WireForm::EndpointUrls) {
            format!("https://{}{path}", st.addr)
        } else {
            path.to_string()
        })
    };
    let mut endpoints = serde_json::Map::new();
    endpoints.insert("directory".into(), at(DIRECTORY_PATH));
    endpoints.insert("status".into(), at(STATUS_TEMPLATE));
    let oob_key = if wire == Some(WireForm::PostOobKey) {
        "postOOB"
    } else {
        "postOobSecret"
    };
    endpoints.insert(oob_key.into(), at(OOB_PATH));
    endpoints.insert(
        "postProvisionRequest".into(),
        match &st.bugs.provreq_url {
            Some(u) => Value::String(u.clone()),
            None => at(PROVREQ_PATH),
        },
    );
    let pem = st.ca.cert_pem();
    let ca = match wire {
        _ if st.bugs.has(Bug::NoCaInDirectory) => Value::String(String::new()),
        Some(WireForm::CaNull) => Value::Null,
        Some(WireForm::CaBase64) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(pem.as_bytes()))
        }
        _ => Value::String(pem.to_string()),
    };
    let version = if wire == Some(WireForm::Version1x) {
        "1.3"
    } else {
        VERSION
    };
    let mut members: Vec<(&str, Value)> = vec![
        ("endpoints", Value::Object(endpoints)),
        ("caCert", ca),
        ("version", Value::String(version.into())),
        ("services", Value::Object(serde_json::Map::new())),
    ];
    if st.bugs.has(Bug::AdvertiseCsr) {
        members.push(("extensions", serde_json::json!([EXT_CSR])));
    } else if st.bugs.has(Bug::UnknownExtension) {
        members.push(("extensions", serde_json::json!(["x-future-extension"])));
    }
    match wire {
        Some(WireForm::ExtraFields) => {
            members.insert(
                1,
                ("vendor", serde_json::json!({"name": "suite", "build": 7})),
            );
            members.push(("motd", Value::String("unknown members are ignored".into())));
        }
        Some(WireForm::Reordered) => members.reverse(),
        _ => {}
    }
    crate::core::json::encode_members(&members)
}

/// An Approved answer in the given wire form, signed (raw key) over the
/// bytes sent with the signature blanked, as every sender must sign.
fn approved_in_form(r: &ProvisionResponse, secret: &str, form: WireForm) -> Vec<u8> {
    use serde_json::Value;
    let mut members: Vec<(&str, Value)> = Vec::new();
    if r.retry_sec != 0 {
        members.push(("retrySec", Value::from(r.retry_sec)));
    }
    members.push(("status", Value::String(r.status.as_str().into())));
    members.push(("caCert", Value::String(r.ca_cert.clone())));
    members.push(("clientCert", Value::String(r.client_cert.clone())));
    members.push(("signature", Value::String(String::new())));
    match form {
        WireForm::ExtraFields => members.insert(1, ("note", Value::String("ignored".into()))),
        WireForm::Reordered => members.reverse(),
        _ => {}
    }
    super::perturb::signed(crate::core::json::encode_members(&members), secret)
}

fn provision(st: &State, body: &[u8]) -> Response<Full<Bytes>> {
    let b = &st.bugs;
    // The shape is judged as the reference server judges it (PROTOCOL §5
    // step 1): this server's bugs are in its answers, not in what it accepts.
    let Ok(req) = crate::core::validate::parse_provision_request(body) else {
        return json(StatusCode::BAD_REQUEST, b"{}".to_vec());
    };
    {
        let mut left = st.waiting_left.lock().unwrap_or_else(|p| p.into_inner());
        if *left > 0 {
            *left -= 1;
            let mut r = ProvisionResponse {
                retry_sec: b.waiting_retry_sec,
                status: ProvisionStatus::Waiting,
                ca_cert: st.ca.cert_pem().to_string(),
                client_cert: String::new(),
                signature: String::new(),
            };
            return json(StatusCode::OK, r.unsigned());
        }
    }
    let now = OffsetDateTime::now_utc();
    let issue = |device: &str, key: &DevicePublicKey| -> Option<String> {
        let ca = if b.has(Bug::OtherCa) {
            &st.other_ca
        } else {
            &st.ca
        };
        let (validity, at) = if b.has(Bug::Expired) {
            (Duration::hours(1), now - Duration::days(2))
        } else if b.has(Bug::NotYetValid) {
            // issue_device backdates by 5 minutes: start 65 minutes ahead.
            (Duration::days(30), now + Duration::minutes(65))
        } else {
            (Duration::days(30), now)
        };
        ca.issue_device(device, key, validity, at)
            .ok()
            .map(|c| c.pem)
    };
    let Ok(dev_key) = DevicePublicKey::from_pem(&req.public_key_pem) else {
        return json(StatusCode::BAD_REQUEST, b"{}".to_vec());
    };
    let other_key = || {
        rcgen::KeyPair::generate()
            .ok()
            .and_then(|k| DevicePublicKey::from_pem(&k.public_key_pem()).ok())
    };
    let key = if b.has(Bug::OtherKey) {
        match other_key() {
            Some(k) => k,
            None => return json(StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec()),
        }
    } else {
        dev_key.clone()
    };
    let cn = if b.has(Bug::OtherCn) {
        format!("{}-other", req.device_id)
    } else if b.has(Bug::CnCase) {
        req.device_id.to_ascii_uppercase()
    } else {
        req.device_id.to_string()
    };
    let cert = issue(&cn, &key).unwrap_or_default();
    if b.has(Bug::Reject) {
        let mut r = ProvisionResponse {
            retry_sec: 0,
            status: ProvisionStatus::Rejected,
            ca_cert: st.ca.cert_pem().to_string(),
            client_cert: if b.has(Bug::CertOnRejected) {
                cert
            } else {
                String::new()
            },
            signature: String::new(),
        };
        return json(StatusCode::OK, r.unsigned());
    }
    let mut r = ProvisionResponse {
        retry_sec: 3600,
        status: ProvisionStatus::Approved,
        ca_cert: st.ca.cert_pem().to_string(),
        client_cert: cert,
        signature: String::new(),
    };
    if let Some(p) = b.perturb {
        if !st.perturbed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let other = other_key()
                .and_then(|k| issue(&req.device_id, &k))
                .unwrap_or_default();
            let m = Material {
                secret: &st.secret,
                other_ca_pem: st.other_ca.cert_pem(),
                other_key_cert_pem: &other,
                addr: st.addr,
            };
            return super::perturb::answer(p, &r, &m);
        }
    }
    let mut bytes = match b.sign {
        SignMode::Honest => match b.wire {
            Some(form @ (WireForm::ExtraFields | WireForm::Reordered)) if b.tamper.is_none() => {
                approved_in_form(&r, &st.secret, form)
            }
            _ => r.sign(&st.secret, KeyVariant::Raw),
        },
        SignMode::OtherSecret => r.sign(&format!("{}-not", st.secret), KeyVariant::Raw),
        SignMode::Sha256Key => r.sign(&st.secret, KeyVariant::Sha256OfSecret),
        SignMode::Unsigned => r.unsigned(),
    };
    if let Some(t) = b.tamper {
        match t {
            Tamper::ClientCert => {
                r.client_cert = issue(&req.device_id, &dev_key).unwrap_or_default()
            }
            Tamper::CaCert => r.ca_cert = st.other_ca.cert_pem().to_string(),
            Tamper::Status => r.status = ProvisionStatus::Approved,
            Tamper::RetrySec => r.retry_sec = 1,
        }
        if t == Tamper::Status {
            // Flip a signed Waiting into Approved: sign a Waiting body,
            // then send it as Approved with the certificate.
            let mut w = r.clone();
            w.status = ProvisionStatus::Waiting;
            let signed = w.sign(&st.secret, KeyVariant::Raw);
            if let Ok(mut v) = serde_json::from_slice::<ProvisionResponse>(&signed) {
                v.status = ProvisionStatus::Approved;
                bytes = crate::core::json::to_go_json(&v);
            }
        } else {
            bytes = crate::core::json::to_go_json(&r);
        }
    }
    json(StatusCode::OK, bytes)
}

/// Peeks (without consuming) the first TLS record of a connection and reads
/// the versions its ClientHello offers; `None` when it is not one, or does
/// not arrive within 2 s.
async fn peek_hello(tcp: &tokio::net::TcpStream) -> Option<Vec<u16>> {
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    for _ in 0..200 {
        let n = tokio::time::timeout_at(deadline, tcp.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if n >= 5 {
            let need = 5 + u16::from_be_bytes([buf[3], buf[4]]) as usize;
            if n >= need || n == buf.len() {
                return crate::suite::wire::offered_versions(&buf[..n]);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    None
}

/// A stream whose writes go out one byte a second (the `trickle` switch).
struct Trickle<S> {
    inner: S,
    next: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Trickle<S> {
    fn new(inner: S) -> Self {
        Trickle { inner, next: None }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Trickle<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Trickle<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        if let Some(sleep) = self.next.as_mut() {
            if std::future::Future::poll(sleep.as_mut(), cx).is_pending() {
                return Poll::Pending;
            }
        }
        let one = &buf[..buf.len().min(1)];
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, one) {
            Poll::Ready(Ok(n)) => {
                self.next = Some(Box::pin(tokio::time::sleep(
                    std::time::Duration::from_secs(1),
                )));
                // Push the byte out now; the flush's own result comes later.
                let _ = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
