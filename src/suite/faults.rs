//! The catalogue of deliberate server defects, for proving that the
//! conformance suite's checks bite: one named switch per broken rule of
//! PROTOCOL, none on by default. [`super::faulty_server`] is the server that
//! has them; the CLI never starts it. [`Switch`] and [`Switches`] are the
//! one model of every catalogue of misbehaviour: this one, the device's
//! ([`super::client_faults`]) and the hostile server's ([`super::hostile::Bug`]).

/// One deliberately broken rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// No limit on failed signatures (PROTOCOL §5 step 4).
    NoGuessLimit,
    /// `validUntil` ignored: past/garbage accepted, never expires (§4).
    IgnoreValidUntil,
    /// Empty OOB secret accepted (§4).
    AcceptEmptySecret,
    /// Device IDs not validated (§5).
    NoDeviceIdCheck,
    /// Status readable with any CA-signed certificate (§7).
    StatusAnyCert,
    /// Any HTTP method accepted (§1).
    AnyMethod,
    /// Serial number = Unix time (§5).
    SerialFromTime,
    /// No request size limit (§5).
    NoBodyLimit,
    /// The secret is not discarded after approval (§4).
    SecretReusable,
    /// OOB posts accepted without a client certificate (§4).
    OobNoAuth,
    /// Approved responses unsigned (§6).
    UnsignedApproved,
    /// Approved responses signed with SHA-256(secret) (§6).
    Sha256ResponseKey,
    /// Certificates issued with a wrong CN (§5).
    WrongCn,
    /// Certificates issued without EKU clientAuth (§5).
    NoClientAuthEku,
    /// Any signature approved (§5 step 4).
    AcceptBadSignature,
    /// A device certificate renews any device (§5 step 2).
    RenewOtherDevice,
    /// Waiting without `retrySec` (§5).
    WaitingWithoutRetry,
    /// A certificate attached to Rejected (§6).
    CertOnRejected,
    /// CSR not checked (§8).
    IgnoreCsr,
    /// Expired device certificates accepted for renewal (§5 step 2).
    ExpiredRenewal,
    /// Answer 500 to device IDs longer than 64 characters.
    ErrorOnLongDeviceId,
    /// Panic (connection dropped) on a provisioning body with a nested object.
    PanicOnNestedObject,
    /// The directory omits `caCert`.
    NoCaInDirectory,
    /// The Go reference's wire format (PROTOCOL §10): text/plain, `caCert`
    /// null in the directory and "" in answers, no `retrySec`, empty OOB
    /// answer, 401/403 swapped, base64 `clientCert` in status, and
    /// verification by re-serialisation.
    GoWireFormat,
    /// The process stops serving when provisioning requests and OOB posts
    /// overlap (the Go reference's unlocked secret map: Go aborts on a
    /// concurrent map read and write).
    DieUnderConcurrency,
    /// Certificates issued by a CA other than the one the directory and TLS
    /// chain name (§5).
    IssueFromOtherCa,
    /// HMAC keyed with SHA-256(secret) both ways, as the standard's prose
    /// reads (§6).
    Sha256HmacKey,
    /// The DNS-SD instance carries an empty TXT record (§2).
    EmptyTxt,
    /// Sequence: a renewal puts back the secret the device's first
    /// provisioning consumed (a "restore" keyed by device).
    RenewalRevivesSecret,
    /// Sequence: a re-post over a pending secret replaces the secret but
    /// keeps the first post's `validUntil`.
    RepostKeepsOldExpiry,
    /// Sequence: failed guesses live in a per-device counter that an
    /// approval does not clear; the next post (with nothing pending)
    /// starts from it.
    ApprovalKeepsGuessCount,
    /// Sequence: requests answered Waiting (no secret yet) count as failed
    /// guesses against the secret posted next.
    WaitingCountsAsGuess,
    /// Sequence: consuming a secret discards every device's secret with
    /// the same value (an index keyed by secret).
    SecretSharedByValue,
    /// Sequence: a failed guess rewrites the entry with the default
    /// `validUntil`, so a near expiry no longer holds.
    FailedGuessExtendsExpiry,
    /// Sequence: secrets are keyed by the lower-cased device ID, so devices
    /// whose IDs differ only in case share one.
    SecretKeyCaseFolded,
    /// Sequence: status matches device IDs by prefix (`LIKE 'id%'`), so a
    /// device without a certificate shows one whose ID extends its own.
    StatusPrefixMatch,
    /// Discovery: the SRV record gives the listening port + 1 (§2).
    MdnsWrongPort,
    /// Discovery: no A/AAAA record is published for the SRV target (§2).
    MdnsNoAddress,
    /// Discovery: the advertised address is 127.0.0.2, which the server's
    /// certificate does not name (it answers there when listening on
    /// 0.0.0.0) (§2, §3).
    MdnsAddressNotInCert,
    /// No time limit on reading a body: a body shorter than its
    /// `Content-Length` holds the request open for ever.
    NoBodyTimeout,
    /// Near miss (identity): the certificate's CN is the device ID in lower
    /// case.
    CnCaseFolded,
    /// Near miss (identity): a device certificate renews a device whose ID
    /// differs only in letter case or a trailing dot.
    RenewalLooseCn,
    /// Near miss (counts): the secret is discarded on the 4th failed
    /// signature instead of after the 5th.
    GuessLimitFour,
    /// Near miss (state): failed guesses are counted per device, not per
    /// posted secret, so a re-post does not reset them.
    RepostKeepsGuessCount,
    /// Near miss (counts): a device ID of exactly 128 characters is refused.
    DeviceIdMax127,
    /// Near miss (counts): a body of exactly 64 KiB gets 413.
    BodyLimitOffByOne,
    /// Near miss (time): `validUntil`'s UTC offset is dropped (its local
    /// time read as UTC).
    ValidUntilIgnoresOffset,
    /// Near miss (state): status answers from a cache filled on first read
    /// and never invalidated, so it shows a renewed device's old
    /// certificate.
    StatusStaleAfterRenewal,
    /// Near miss (encoding): `publicKeyPEM` refused unless it ends in a
    /// newline and uses LF line ends.
    KeyPemNeedsNewline,
    /// Near miss (profile): EKU widened to clientAuth + serverAuth.
    ServerAuthEku,
    /// Near miss (profile): 16-octet serials from a counter (unique, long,
    /// and predictable).
    SerialCounter,
    /// Near miss (identity): certificates provisioned by an admin carry
    /// the admin's OU beside iotdevice.
    AdminOuLeaks,
    /// Near miss (time): a client certificate's role is judged by its
    /// expiry only, so one that is not valid yet already grants it.
    CredentialNotBeforeIgnored,
    /// Near miss (state): status says Waiting whenever a secret is pending
    /// for the device, hiding the certificate it already holds.
    StatusFromSecretTable,
    /// Transport: a ClientHello offering only TLS 1.0/1.1 is answered with
    /// a ServerHello for that version (as a server with a legacy stack).
    LegacyTls,
    /// Transport: plaintext HTTP on the TLS port is served.
    PlaintextHttp,
    /// Transport: a client certificate is *recognised* by its issuer name
    /// (equal to the CA's subject) instead of verified by its signature.
    RecognisedNotVerified,
    /// Transport: the body limit is checked only against a declared
    /// `Content-Length`; a chunked body has none.
    ChunkedNoLimit,
    /// Transport: no time limit on reading request headers.
    NoHeaderTimeout,
    /// Transport: the TLS certificate names only `idprov.invalid`, not the
    /// address devices are sent to.
    ServerCertOtherName,
    /// Concurrency: the posted secret is read, the lock let go while the
    /// signature is checked, and the decision applied afterwards (an
    /// unlocked check-then-act), so requests racing with one secret can
    /// each be Approved.
    RacedSecretCheck,
    /// Concurrency: the failed-guess counter is read before the signature
    /// is checked and written back, plus one, afterwards (a counter updated
    /// outside its lock), so racing wrong guesses count once.
    GuessCountLostUpdate,
    /// Boundary: a posted secret is kept to its first 64 bytes (a
    /// fixed-width column), so a longer secret never verifies.
    SecretTruncated64,
    /// Boundary: `validUntil` past 2038-01-19T03:14:07Z is refused (a
    /// signed 32-bit time).
    ValidUntil2038,
    /// Boundary: device IDs holding `:` are refused (an alphabet that
    /// forgot one character of the profile's).
    DeviceIdRefusesColon,
    /// Boundary: an RSA key's size is read in whole bytes of its modulus,
    /// so keys of 2041–2047 bits pass the 2048-bit floor.
    RsaSizeInBytes,
    /// Restart: posted secrets are written to the data directory and read
    /// back at start, so a restart forgets none.
    SecretsOnDisk,
    /// Restart: status is served only for devices issued to since the
    /// server started (a cache that a restart empties).
    StatusFromMemory,
    /// Restart: serials look random but come from a counter that starts
    /// again at every start, so the first after a restart repeats one.
    SerialResetAtStart,
    /// Crash: Approved is answered before the certificate is durable; it
    /// waits in a write-behind queue (status reads it there) that is
    /// written when eight have gathered or on a clean stop, so a kill
    /// loses what waits.
    WriteBehind,
    /// Relation: the subject OU of a request's CSR is copied into the
    /// certificate beside `iotdevice` (a CSR asking for OU=admin gets an
    /// admin certificate).
    CsrOuCopied,
    /// Relation: a `days` member in the request sets the certificate's
    /// lifetime (any sane one).
    HonoursRequestedDays,
    /// Relation: renewals are issued from another template, 60 days longer
    /// than first issuance.
    RenewalOtherLifetime,
    /// Every way: a renewal that keeps the key of the device's current
    /// certificate is Rejected (the server assumes renewal means a new key).
    RenewalRequiresNewKey,
    /// Boundary: the signature is compared on its first 16 bytes only (a
    /// truncated comparison), so a tag right in its first half is Approved.
    TagComparedByPrefix,
}

/// A named switch of a deliberately broken peer: the one model of the
/// server's ([`Fault`]) and the device's
/// ([`super::client_faults::ClientFault`]) fault catalogues. Each switch
/// breaks one rule; none is on unless named; a switch's name on the command
/// line is its variant's in kebab-case.
pub trait Switch: Copy + PartialEq + std::fmt::Debug + 'static {
    /// Every switch that can be named.
    fn catalogue() -> &'static [Self];

    /// The switch's name on the command line (kebab-case of the variant).
    fn name(self) -> String {
        let mut out = String::new();
        for (i, c) in format!("{self:?}").chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Looks a switch up by [`Switch::name`].
    fn by_name(name: &str) -> Option<Self> {
        Self::catalogue().iter().copied().find(|s| s.name() == name)
    }
}

impl Switch for Fault {
    fn catalogue() -> &'static [Fault] {
        Fault::NAMED
    }
}

impl Fault {
    /// Every fault that can be named: [`Fault::ALL`] and the Go
    /// reference's wire format.
    const NAMED: &'static [Fault] = &{
        let mut all = [Fault::GoWireFormat; Fault::ALL.len() + 1];
        let mut i = 0;
        while i < Fault::ALL.len() {
            all[i] = Fault::ALL[i];
            i += 1;
        }
        all
    };

    /// Every fault.
    pub const ALL: &'static [Fault] = &[
        Fault::NoGuessLimit,
        Fault::IgnoreValidUntil,
        Fault::AcceptEmptySecret,
        Fault::NoDeviceIdCheck,
        Fault::StatusAnyCert,
        Fault::AnyMethod,
        Fault::SerialFromTime,
        Fault::NoBodyLimit,
        Fault::SecretReusable,
        Fault::OobNoAuth,
        Fault::UnsignedApproved,
        Fault::Sha256ResponseKey,
        Fault::WrongCn,
        Fault::NoClientAuthEku,
        Fault::AcceptBadSignature,
        Fault::RenewOtherDevice,
        Fault::WaitingWithoutRetry,
        Fault::CertOnRejected,
        Fault::IgnoreCsr,
        Fault::ExpiredRenewal,
        Fault::ErrorOnLongDeviceId,
        Fault::PanicOnNestedObject,
        Fault::NoCaInDirectory,
        Fault::DieUnderConcurrency,
        Fault::IssueFromOtherCa,
        Fault::Sha256HmacKey,
        Fault::EmptyTxt,
        Fault::MdnsWrongPort,
        Fault::MdnsNoAddress,
        Fault::MdnsAddressNotInCert,
        Fault::RenewalRevivesSecret,
        Fault::RepostKeepsOldExpiry,
        Fault::ApprovalKeepsGuessCount,
        Fault::WaitingCountsAsGuess,
        Fault::SecretSharedByValue,
        Fault::FailedGuessExtendsExpiry,
        Fault::SecretKeyCaseFolded,
        Fault::StatusPrefixMatch,
        Fault::NoBodyTimeout,
        Fault::CnCaseFolded,
        Fault::RenewalLooseCn,
        Fault::GuessLimitFour,
        Fault::RepostKeepsGuessCount,
        Fault::DeviceIdMax127,
        Fault::BodyLimitOffByOne,
        Fault::ValidUntilIgnoresOffset,
        Fault::StatusStaleAfterRenewal,
        Fault::KeyPemNeedsNewline,
        Fault::ServerAuthEku,
        Fault::SerialCounter,
        Fault::AdminOuLeaks,
        Fault::CredentialNotBeforeIgnored,
        Fault::StatusFromSecretTable,
        Fault::LegacyTls,
        Fault::PlaintextHttp,
        Fault::RecognisedNotVerified,
        Fault::ChunkedNoLimit,
        Fault::NoHeaderTimeout,
        Fault::ServerCertOtherName,
        Fault::RacedSecretCheck,
        Fault::GuessCountLostUpdate,
        Fault::SecretTruncated64,
        Fault::ValidUntil2038,
        Fault::DeviceIdRefusesColon,
        Fault::RsaSizeInBytes,
        Fault::SecretsOnDisk,
        Fault::StatusFromMemory,
        Fault::SerialResetAtStart,
        Fault::WriteBehind,
        Fault::CsrOuCopied,
        Fault::HonoursRequestedDays,
        Fault::RenewalOtherLifetime,
        Fault::RenewalRequiresNewKey,
        Fault::TagComparedByPrefix,
    ];

    /// Whether the fault is a near miss (issue 15's method): a bug that
    /// passed the catalogue which judged only a few properties with
    /// far-off violations.
    pub fn is_near_miss(self) -> bool {
        matches!(
            self,
            Fault::CnCaseFolded
                | Fault::RenewalLooseCn
                | Fault::GuessLimitFour
                | Fault::RepostKeepsGuessCount
                | Fault::DeviceIdMax127
                | Fault::BodyLimitOffByOne
                | Fault::ValidUntilIgnoresOffset
                | Fault::StatusStaleAfterRenewal
                | Fault::KeyPemNeedsNewline
                | Fault::ServerAuthEku
                | Fault::SerialCounter
                | Fault::AdminOuLeaks
                | Fault::CredentialNotBeforeIgnored
                | Fault::StatusFromSecretTable
        )
    }

    /// The Go reference as recorded (PROTOCOL §10): its wire format plus
    /// every defect listed there.
    pub const GO_REFERENCE: &'static [Fault] = &[
        Fault::GoWireFormat,
        Fault::IgnoreValidUntil,
        Fault::NoGuessLimit,
        Fault::AcceptEmptySecret,
        Fault::NoDeviceIdCheck,
        Fault::StatusAnyCert,
        Fault::AnyMethod,
        Fault::SerialFromTime,
        Fault::NoBodyLimit,
        Fault::DieUnderConcurrency,
        Fault::NoHeaderTimeout,
        Fault::NoBodyTimeout,
        Fault::ChunkedNoLimit,
    ];
}

/// The set of active faults (empty for an honest server).
pub type Faults = Switches<Fault>;

/// A set of switches from one catalogue ([`Fault`], the device's
/// [`super::client_faults::ClientFault`], the suite server's
/// [`super::hostile::Bug`]); empty is honest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switches<S>(Vec<S>);

impl<S> Default for Switches<S> {
    fn default() -> Self {
        Switches(Vec::new())
    }
}

impl<S: Switch> Switches<S> {
    /// No switches on.
    pub fn none() -> Self {
        Switches(Vec::new())
    }

    /// Exactly these switches on.
    pub fn of(on: &[S]) -> Self {
        Switches(on.to_vec())
    }

    /// Whether `s` is on.
    pub fn has(&self, s: S) -> bool {
        self.0.contains(&s)
    }

    /// The switches that are on.
    pub fn on(&self) -> &[S] {
        &self.0
    }
}

impl Fault {
    /// Whether this fault shows only in a sequence of operations (issue 13:
    /// every case of the fixed catalogue passes against it), or only when
    /// an operation is made in a way no case makes it (issue 24).
    pub fn is_sequence(self) -> bool {
        matches!(
            self,
            Fault::RenewalRequiresNewKey
                | Fault::RenewalRevivesSecret
                | Fault::RepostKeepsOldExpiry
                | Fault::ApprovalKeepsGuessCount
                | Fault::WaitingCountsAsGuess
                | Fault::SecretSharedByValue
                | Fault::FailedGuessExtendsExpiry
                | Fault::SecretKeyCaseFolded
                | Fault::StatusPrefixMatch
        )
    }
}

impl Fault {
    /// Whether this fault shows only across a restart of the server
    /// (issue 26): every case that does not restart it passes.
    pub fn is_restart(self) -> bool {
        matches!(
            self,
            Fault::SecretsOnDisk
                | Fault::StatusFromMemory
                | Fault::SerialResetAtStart
                | Fault::WriteBehind
        )
    }

    /// Whether this fault shows only at a size or value the catalogue did
    /// not try before its sweeps, or only in a relation between two answers
    /// (issue 24): every other case passes.
    pub fn is_boundary(self) -> bool {
        matches!(
            self,
            Fault::SecretTruncated64
                | Fault::TagComparedByPrefix
                | Fault::ValidUntil2038
                | Fault::DeviceIdRefusesColon
                | Fault::RsaSizeInBytes
                | Fault::CsrOuCopied
                | Fault::HonoursRequestedDays
                | Fault::RenewalOtherLifetime
        )
    }

    /// Whether this fault shows only when requests overlap (issue 24: every
    /// case of the fixed catalogue, and every sequence, passes against it).
    pub fn is_concurrency(self) -> bool {
        matches!(self, Fault::RacedSecretCheck | Fault::GuessCountLostUpdate)
    }
}

#[cfg(test)]
mod tests {
    use super::super::client_faults::ClientFault;
    use super::*;

    fn round_trip<S: Switch>() {
        let names: std::collections::BTreeSet<String> =
            S::catalogue().iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), S::catalogue().len(), "names are unique");
        for s in S::catalogue() {
            assert_eq!(S::by_name(&s.name()), Some(*s));
        }
        assert_eq!(S::by_name("no-such-fault"), None);
    }

    #[test]
    fn every_switch_is_found_by_its_name() {
        round_trip::<Fault>();
        round_trip::<ClientFault>();
        round_trip::<super::super::hostile::Bug>();
        assert_eq!(Fault::by_name("go-wire-format"), Some(Fault::GoWireFormat));
        assert_eq!(
            ClientFault::by_name("sha256-key"),
            Some(ClientFault::Sha256Key)
        );
    }
}
