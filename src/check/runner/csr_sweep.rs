//! The CSR sweep (issue 24): CSRs that ask for more than the profile gives
//! or that are encoded another legal way, each judged by the relation
//! "the certificate is the profile's whatever the request carried".

use super::sweep::in_terms;
use super::*;
use crate::check::profile::{shape_of, Shape};
use crate::check::scenario::{Expect, StatusSpec};

/// One CSR of the sweep: what it asks for or how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsrShape {
    /// CN = the device ID and nothing else (the baseline: must be Approved).
    Plain,
    /// CN of another device.
    OtherCn,
    /// OU = admin beside the CN (a role).
    AdminOu,
    /// O, OU = iotdevice and C besides the CN.
    MoreSubject,
    /// basicConstraints cA = true.
    Ca,
    /// keyUsage keyCertSign and cRLSign.
    CertSign,
    /// extendedKeyUsage serverAuth beside clientAuth.
    ServerAuth,
    /// subjectAltName with a DNS name and an IP address.
    Names,
    /// 450 DNS names: a CSR larger than one TLS record (16 KiB).
    OverOneRecord,
    /// The plain CSR's PEM with CRLF line ends.
    Crlf,
    /// The plain CSR's PEM in 76-column lines.
    Wide,
    /// The plain CSR's PEM after explanatory text (RFC 7468 §5.2).
    Preamble,
}

const SHAPES: &[CsrShape] = &[
    CsrShape::Plain,
    CsrShape::OtherCn,
    CsrShape::AdminOu,
    CsrShape::MoreSubject,
    CsrShape::Ca,
    CsrShape::CertSign,
    CsrShape::ServerAuth,
    CsrShape::Names,
    CsrShape::OverOneRecord,
    CsrShape::Crlf,
    CsrShape::Wide,
    CsrShape::Preamble,
];

impl CsrShape {
    fn describe(self) -> &'static str {
        match self {
            CsrShape::Plain => "with CN = the device ID",
            CsrShape::OtherCn => "asking for the CN of another device",
            CsrShape::AdminOu => "asking for OU=admin",
            CsrShape::MoreSubject => "asking for O, OU=iotdevice and C",
            CsrShape::Ca => "asking for cA = true",
            CsrShape::CertSign => "asking for keyCertSign and cRLSign",
            CsrShape::ServerAuth => "asking for serverAuth",
            CsrShape::Names => "asking for a DNS name and an IP address",
            CsrShape::OverOneRecord => "of 450 DNS names (over one 16 KiB TLS record)",
            CsrShape::Crlf => "in PEM with CRLF line ends",
            CsrShape::Wide => "in PEM of 76-column lines",
            CsrShape::Preamble => "in PEM after explanatory text",
        }
    }

    /// The CSR's PEM for `device`, signed with `key`.
    fn build(self, key: &rcgen::KeyPair, device: &str) -> Result<String, rcgen::Error> {
        use rcgen::{DnType, ExtendedKeyUsagePurpose as Eku, KeyUsagePurpose as Ku, SanType};
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        let cn = if self == CsrShape::OtherCn {
            format!("other-{device}")
        } else {
            device.to_string()
        };
        p.distinguished_name.push(DnType::CommonName, cn);
        match self {
            CsrShape::AdminOu => p
                .distinguished_name
                .push(DnType::OrganizationalUnitName, "admin"),
            CsrShape::MoreSubject => {
                p.distinguished_name
                    .push(DnType::OrganizationName, "Requested Org");
                p.distinguished_name
                    .push(DnType::OrganizationalUnitName, "iotdevice");
                p.distinguished_name.push(DnType::CountryName, "ZZ");
            }
            CsrShape::Ca => p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
            CsrShape::CertSign => {
                p.key_usages = vec![Ku::DigitalSignature, Ku::KeyCertSign, Ku::CrlSign];
            }
            CsrShape::ServerAuth => p.extended_key_usages = vec![Eku::ClientAuth, Eku::ServerAuth],
            CsrShape::Names => {
                p.subject_alt_names = vec![
                    SanType::DnsName("csr-requested.invalid".try_into()?),
                    SanType::IpAddress(std::net::IpAddr::from([192, 0, 2, 77])),
                ];
            }
            CsrShape::OverOneRecord => {
                for i in 0..450 {
                    p.subject_alt_names.push(SanType::DnsName(
                        format!("name-{i:03}.csr-requested.invalid").try_into()?,
                    ));
                }
            }
            _ => {}
        }
        let pem = p.serialize_request(key)?.pem()?;
        Ok(match self {
            CsrShape::Crlf => pem.replace("\r\n", "\n").replace('\n', "\r\n"),
            CsrShape::Wide => {
                let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
                let mut out = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
                for chunk in b64.as_bytes().chunks(76) {
                    out.push_str(&String::from_utf8_lossy(chunk));
                    out.push('\n');
                }
                out.push_str("-----END CERTIFICATE REQUEST-----\n");
                out
            }
            CsrShape::Preamble => format!("Subject: CN={device}\n{pem}"),
            _ => pem,
        })
    }
}

impl Case<'_> {
    /// Every [`CsrShape`] from a fresh device with its own key and secret.
    /// The plain CSR must be Approved; every other may be refused with 400
    /// or Approved, and then its certificate must fit the profile (for the
    /// request's key and the device's own ID) and have the plain one's
    /// shape: nothing the CSR asked for is taken.
    pub(super) async fn sweep_csrs(&mut self) -> StepResult {
        let mut baseline: Option<Shape> = None;
        let mut refused = Vec::new();
        for (k, &shape) in SHAPES.iter().enumerate() {
            let what = format!("a CSR {}", shape.describe());
            let device = self.device(&format!("csr-{k}"));
            let secret = self.secret(&format!("csr-{k}"));
            let code = self.post_secret(&device, &secret, "").await?;
            if code != 200 {
                return fail(format!("{what}: the OOB post got HTTP {code}, not 200"));
            }
            let setup = |e: rcgen::Error| StepError::Fail(format!("setup: {e}"));
            let key = rcgen::KeyPair::generate().map_err(setup)?;
            let csr = shape.build(&key, &device).map_err(setup)?;
            let plain = shape == CsrShape::Plain;
            let step = Step {
                action: Some(Action::Provision),
                device_literal: Some(device.clone()),
                secret_literal: Some(secret.clone()),
                key_pem_literal: Some(key.public_key_pem()),
                csr_literal: Some(csr),
                expect: if plain {
                    Expect {
                        http: Some(vec![200]),
                        status: Some(StatusSpec::Approved),
                        certificate: Some(true),
                        ..Expect::default()
                    }
                } else {
                    Expect {
                        http: Some(vec![200, 400]),
                        ..Expect::default()
                    }
                },
                ..Step::default()
            };
            self.do_provision(&step)
                .await
                .map_err(|e| in_terms(e, &what))?;
            let Some((200, body)) = &self.last_response else {
                refused.push(shape.describe());
                continue;
            };
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            let pem = v["clientCert"].as_str().unwrap_or("");
            if v["status"] != "Approved" || pem.is_empty() {
                return fail(format!(
                    "{what}: answered HTTP 200 {}, not Approved with a certificate or 400 (csr.verify)",
                    v["status"].as_str().unwrap_or("(no status)")
                ));
            }
            let der = cert_der_from_pem(pem)
                .map_err(|e| StepError::Fail(format!("{what}: clientCert: {e}")))?;
            let got = shape_of(&der).map_err(|e| StepError::Fail(format!("{what}: {e}")))?;
            match &baseline {
                None => baseline = Some(got),
                Some(want) => {
                    let diff = want.differences(&got);
                    if !diff.is_empty() {
                        return fail(format!(
                            "{what}: the certificate took something from the CSR (its profile differs from the plain CSR's: {})",
                            diff.join("; ")
                        ));
                    }
                }
            }
        }
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "{} CSRs sent; refused with 400: {}",
                SHAPES.len(),
                if refused.is_empty() {
                    "none".to_string()
                } else {
                    refused.join(", ")
                }
            ),
        ));
        Ok(None)
    }
}
