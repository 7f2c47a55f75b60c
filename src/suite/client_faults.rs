//! The catalogue of deliberate device defects, for proving that the suite's
//! client cases bite: one named switch per broken rule of PROTOCOL §9.
//! [`super::faulty_client`] is the device that has them; the `idprov` CLI
//! never runs it.

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
    /// Relations: keeps the answer's `caCert` text as `ca.pem` (it checks
    /// only the first certificate in it), so a second CA appended to a
    /// signed answer becomes trusted.
    StoresAnswerCa,
}

impl super::faults::Switch for ClientFault {
    fn catalogue() -> &'static [ClientFault] {
        ClientFault::ALL
    }
}

impl ClientFault {
    /// Every fault.
    pub const ALL: &'static [ClientFault] = &[
        ClientFault::SkipSignatureCheck,
        ClientFault::SkipPinning,
        ClientFault::SaveOnRejected,
        ClientFault::AcceptOtherCn,
        ClientFault::AcceptOtherKey,
        ClientFault::AcceptOtherCa,
        ClientFault::AcceptExpired,
        ClientFault::IgnoreRetrySec,
        ClientFault::SignPrettyJson,
        ClientFault::SendSecret,
        ClientFault::RenewWithoutMtls,
        ClientFault::Sha256Key,
        ClientFault::IgnorePreprovisionedCa,
        ClientFault::PemOnlyCa,
        ClientFault::CsrUnasked,
        ClientFault::AcceptNotYetValid,
        ClientFault::CnCaseInsensitive,
        ClientFault::RetryAfterRejected,
        ClientFault::LeavesTempFile,
        ClientFault::UnboundedRetrySec,
        ClientFault::OffersLegacyTls,
        ClientFault::NoRequestTimeout,
        ClientFault::AllowPlainHttp,
        ClientFault::FallsBackToHttp,
        ClientFault::StoresAnswerCa,
    ];
}
