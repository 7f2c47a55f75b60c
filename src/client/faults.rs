//! Deliberate defects of the device client, for proving that the suite's
//! client cases bite. Reachable only through [`super::run_with_faults`] and
//! the test-only `faulty_client` example, never from the `idprov` CLI.

/// One broken rule of PROTOCOL §9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientFault {
    /// Accepts an Approved answer whatever its signature.
    SkipSignatureCheck,
    /// Does not pin the directory's CA for later requests.
    SkipPinning,
    /// Keeps a certificate attached to Rejected.
    SaveOnRejected,
    /// Accepts a certificate for another CN.
    AcceptOtherCn,
    /// Accepts a certificate for another key.
    AcceptOtherKey,
    /// Accepts a certificate from another CA.
    AcceptOtherCa,
    /// Accepts an expired certificate.
    AcceptExpired,
    /// Retries Waiting at once, ignoring `retrySec`.
    IgnoreRetrySec,
    /// Signs pretty-printed JSON but sends it compact.
    SignPrettyJson,
    /// Sends the OOB secret in the request.
    SendSecret,
    /// Renews without mutual TLS (signs with the secret instead).
    RenewWithoutMtls,
    /// Signs with SHA-256(secret).
    Sha256Key,
    /// Ignores a pre-provisioned CA (leap of faith instead).
    IgnorePreprovisionedCa,
    /// Reads `caCert` only as PEM text, not as base64 of the PEM (§3).
    PemOnlyCa,
    /// Sends a CSR whether or not the server advertises `csr` (§8).
    CsrUnasked,
    /// Near miss (time): checks only `notAfter`, so a certificate that is
    /// not valid yet is accepted.
    AcceptNotYetValid,
    /// Near miss (identity): compares the CN with its ID ignoring case.
    CnCaseInsensitive,
    /// Near miss (reaction): asks once more after `Rejected` before
    /// giving up.
    RetryAfterRejected,
    /// Near miss (files): stages the certificate in `.cert.pem.tmp` before
    /// checking it and leaves the file behind when it refuses.
    LeavesTempFile,
    /// Near miss (reaction): waits as long as `retrySec` says, without its
    /// own bound.
    UnboundedRetrySec,
    /// Transport: the TLS stack offers TLS 1.1 in a ClientHello.
    OffersLegacyTls,
    /// Transport: no time limit on an HTTP exchange (a silent server hangs
    /// the device).
    NoRequestTimeout,
    /// Transport: follows an `http://` URL in plaintext.
    AllowPlainHttp,
    /// Transport: when the TLS connection for the directory fails, asks
    /// the same address again in plain HTTP.
    FallsBackToHttp,
}

impl ClientFault {
    /// Every fault, with its command-line name.
    pub const ALL: &'static [(ClientFault, &'static str)] = &[
        (ClientFault::SkipSignatureCheck, "skip-signature-check"),
        (ClientFault::SkipPinning, "skip-pinning"),
        (ClientFault::SaveOnRejected, "save-on-rejected"),
        (ClientFault::AcceptOtherCn, "accept-other-cn"),
        (ClientFault::AcceptOtherKey, "accept-other-key"),
        (ClientFault::AcceptOtherCa, "accept-other-ca"),
        (ClientFault::AcceptExpired, "accept-expired"),
        (ClientFault::IgnoreRetrySec, "ignore-retry-sec"),
        (ClientFault::SignPrettyJson, "sign-pretty-json"),
        (ClientFault::SendSecret, "send-secret"),
        (ClientFault::RenewWithoutMtls, "renew-without-mtls"),
        (ClientFault::Sha256Key, "sha256-key"),
        (
            ClientFault::IgnorePreprovisionedCa,
            "ignore-preprovisioned-ca",
        ),
        (ClientFault::PemOnlyCa, "pem-only-ca"),
        (ClientFault::CsrUnasked, "csr-unasked"),
        (ClientFault::AcceptNotYetValid, "accept-not-yet-valid"),
        (ClientFault::CnCaseInsensitive, "cn-case-insensitive"),
        (ClientFault::RetryAfterRejected, "retry-after-rejected"),
        (ClientFault::LeavesTempFile, "leaves-temp-file"),
        (ClientFault::UnboundedRetrySec, "unbounded-retry-sec"),
        (ClientFault::OffersLegacyTls, "offers-legacy-tls"),
        (ClientFault::NoRequestTimeout, "no-request-timeout"),
        (ClientFault::AllowPlainHttp, "allow-plain-http"),
        (ClientFault::FallsBackToHttp, "falls-back-to-http"),
    ];

    /// Looks a fault up by name.
    pub fn by_name(name: &str) -> Option<ClientFault> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }
}

/// Sends a plaintext `GET` for `authority/path` (the part of a URL after
/// the scheme) and gives up at once: what the plaintext faults leak.
pub(crate) async fn plain_get(rest: &str) {
    use tokio::io::AsyncWriteExt;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if let Ok(Ok(mut tcp)) = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    {
        let req = format!("GET /{path} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        let _ = tcp.write_all(req.as_bytes()).await;
    }
}
