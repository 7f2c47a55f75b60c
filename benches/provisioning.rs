//! Criterion micro-benchmarks of the provisioning path, each followed by the
//! matching limit from `openssl speed` on the same machine and the ratio.
//!
//!     cargo bench --bench provisioning

use criterion::Criterion;
use idprov::bench::limits;
use idprov::core::decision::{decide, PeerCert, Policy, SecretEntry};
use idprov::core::messages::{ProvisionRequest, ProvisionResponse, ProvisionStatus, Signed};
use idprov::core::sign::{self, KeyVariant};
use idprov::pki::{verify_csr, CertAuthority, DevicePublicKey};
use std::hint::black_box;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

fn request() -> ProvisionRequest {
    let key = rcgen::KeyPair::generate().unwrap();
    ProvisionRequest {
        device_id: "bench-device-0001".into(),
        ip: "192.0.2.7".into(),
        mac: String::new(),
        public_key_pem: key.public_key_pem(),
        csr_pem: None,
        signature: String::new(),
    }
}

fn response() -> ProvisionResponse {
    let ca = CertAuthority::generate("bench CA", OffsetDateTime::now_utc()).unwrap();
    let key =
        DevicePublicKey::from_pem(&rcgen::KeyPair::generate().unwrap().public_key_pem()).unwrap();
    let cert = ca
        .issue_device(
            "bench-device-0001",
            &key,
            time::Duration::days(30),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    ProvisionResponse {
        retry_sec: 864_000,
        status: ProvisionStatus::Approved,
        ca_cert: ca.cert_pem().into(),
        client_cert: cert.pem,
        signature: String::new(),
    }
}

/// Ops per second of `f`, measured for about `secs` seconds.
fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn ratio_line(what: &str, ours: f64, limit: Option<f64>, limit_what: &str) {
    match limit {
        Some(l) => println!(
            "  {what}: {ours:.0}/s — {limit_what}: {l:.0}/s — ratio {:.0} %",
            100.0 * ours / l
        ),
        None => println!("  {what}: {ours:.0}/s — {limit_what}: openssl not available"),
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut req = request();
    let secret = "oob-secret-for-bench";
    let signed_req = req.clone().sign(secret, KeyVariant::Raw);
    let mut resp = response();
    let signed_resp = resp.clone().sign(secret, KeyVariant::Raw);

    let mut g = c.benchmark_group("hmac");
    g.bench_function("sign request", |b| {
        b.iter(|| black_box(req.sign(black_box(secret), KeyVariant::Raw)))
    });
    g.bench_function("verify request", |b| {
        b.iter(|| sign::verify_raw(black_box(&signed_req), secret.as_bytes()).unwrap())
    });
    g.bench_function("sign response", |b| {
        b.iter(|| black_box(resp.sign(black_box(secret), KeyVariant::Raw)))
    });
    g.bench_function("verify response", |b| {
        b.iter(|| sign::verify_raw(black_box(&signed_resp), secret.as_bytes()).unwrap())
    });
    g.finish();

    let now = OffsetDateTime::now_utc();
    let ca = CertAuthority::generate("bench CA", now).unwrap();
    let p256 =
        DevicePublicKey::from_pem(&rcgen::KeyPair::generate().unwrap().public_key_pem()).unwrap();
    let ed_kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed = DevicePublicKey::from_pem(&ed_kp.public_key_pem()).unwrap();
    let csr_kp = rcgen::KeyPair::generate().unwrap();
    let csr_key = DevicePublicKey::from_pem(&csr_kp.public_key_pem()).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench-device-0001");
    let csr_pem = params.serialize_request(&csr_kp).unwrap().pem().unwrap();
    let validity = time::Duration::days(30);
    let mut g = c.benchmark_group("issue");
    g.bench_function("device cert from P-256 key", |b| {
        b.iter(|| {
            ca.issue_device("bench-device-0001", black_box(&p256), validity, now)
                .unwrap()
        })
    });
    g.bench_function("device cert from Ed25519 key", |b| {
        b.iter(|| {
            ca.issue_device("bench-device-0001", black_box(&ed), validity, now)
                .unwrap()
        })
    });
    g.bench_function("device cert from CSR", |b| {
        b.iter(|| {
            verify_csr(black_box(&csr_pem), &csr_key).unwrap();
            ca.issue_device("bench-device-0001", &csr_key, validity, now)
                .unwrap()
        })
    });
    g.finish();

    let entry = SecretEntry {
        secret: zeroize::Zeroizing::new(secret.to_string()),
        valid_until: now + time::Duration::days(1),
        failures: 0,
    };
    let mut g = c.benchmark_group("decision");
    g.bench_function("decide (secret, valid signature)", |b| {
        b.iter(|| {
            decide(
                "bench-device-0001",
                black_box(&signed_req),
                &PeerCert::None,
                Some(&entry),
                now,
                &Policy::default(),
            )
        })
    });
    g.finish();

    // Full provisioning over loopback TLS in-process, fresh handshake each.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let srv = rt
        .block_on(idprov::server::start(idprov::server::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            mdns: false,
            ..Default::default()
        }))
        .unwrap();
    let target = idprov::check::embedded_target(&srv).unwrap();
    let admin = idprov::admin::AdminClient {
        url: target.url.clone(),
        ca_pem: target.ca_pem.clone(),
        identity: target.admin.clone(),
        timeout: Duration::from_secs(10),
    };
    let dev_cfg = std::sync::Arc::new(
        idprov::tls::client_config(
            &idprov::tls::ServerTrust::Pinned(target.ca_pem.clone()),
            None,
        )
        .unwrap(),
    );
    let provreq = format!("https://{}/idprov/provreq", srv.addr);
    let mut counter = 0u64;
    let mut g = c.benchmark_group("end-to-end");
    g.sample_size(20);
    g.bench_function("provisioning over loopback TLS (fresh handshake)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                counter += 1;
                let id = format!("e2e-{counter}");
                let mut r = request();
                r.device_id = id.clone();
                let body = r.sign("s", KeyVariant::Raw);
                rt.block_on(admin.post_oob(&id, "s", "")).unwrap();
                let t = Instant::now();
                let resp = rt
                    .block_on(idprov::net::request(
                        &provreq,
                        http::Method::POST,
                        Some(body),
                        dev_cfg.clone(),
                        Duration::from_secs(10),
                    ))
                    .unwrap();
                total += t.elapsed();
                assert_eq!(resp.status, 200);
            }
            total
        })
    });
    g.finish();
    rt.block_on(srv.shutdown());

    // The crypto floor of one provisioning, part by part (`idprov bench`
    // measures the same primitives in its own run and sums them).
    let floor = idprov::bench::floor::Primitives::new().unwrap();
    let mut g = c.benchmark_group("crypto_floor");
    g.bench_function(format!("key_exchange ({})", floor.group()), |b| {
        b.iter(|| floor.key_exchange().unwrap())
    });
    g.bench_function("handshake_signature (ECDSA P-256)", |b| {
        b.iter(|| floor.handshake_signature().unwrap())
    });
    g.bench_function(format!("key_schedule ({})", floor.suite()), |b| {
        b.iter(|| floor.key_schedule())
    });
    g.bench_function("certificate_signature (ECDSA P-256)", |b| {
        b.iter(|| floor.certificate_signature().unwrap())
    });
    g.bench_function("hmacs (request and answer)", |b| b.iter(|| floor.hmacs()));
    for other in [rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1] {
        let p = idprov::bench::floor::Primitives::with_group(Some(other)).unwrap();
        g.bench_function(format!("key_exchange alternative ({})", p.group()), |b| {
            b.iter(|| p.key_exchange().unwrap())
        });
    }
    g.finish();
    c.final_summary();
    let f = idprov::bench::floor::measure(0.5).unwrap();
    println!(
        "\ncrypto floor (sum of the parts above, measured again): {:.0} µs per provisioning",
        f.total_us
    );

    // Limits side by side, measured in the same run.
    let lim = limits::measure(1, signed_req.len());
    println!("\nlimits from `openssl speed` on this machine, and our rate in the same run:");
    ratio_line(
        "sign request (serialise + HMAC + base64)",
        rate(1.0, || {
            black_box(req.sign(secret, KeyVariant::Raw));
        }),
        lim.hmac_sha256_per_s,
        &format!("openssl HMAC-SHA256 at {} B", lim.hmac_bytes),
    );
    ratio_line(
        "verify request (blank + HMAC + compare)",
        rate(1.0, || {
            sign::verify_raw(&signed_req, secret.as_bytes()).unwrap();
        }),
        lim.hmac_sha256_per_s,
        &format!("openssl HMAC-SHA256 at {} B", lim.hmac_bytes),
    );
    ratio_line(
        "issue from P-256 key",
        rate(1.0, || {
            black_box(ca.issue_device("d", &p256, validity, now).unwrap());
        }),
        lim.ecdsa_p256_sign_per_s,
        "openssl ECDSA P-256 sign (the CA signs with P-256)",
    );
    ratio_line(
        "issue from Ed25519 key",
        rate(1.0, || {
            black_box(ca.issue_device("d", &ed, validity, now).unwrap());
        }),
        lim.ecdsa_p256_sign_per_s,
        "openssl ECDSA P-256 sign (the CA signs with P-256)",
    );
    if let Some(e) = lim.ed25519_sign_per_s {
        println!("  (openssl Ed25519 sign: {e:.0}/s, for device keys that sign CSRs)");
    }
}
