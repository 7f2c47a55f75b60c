//! The legal choices the profile leaves to a device, as switches of the
//! reference client whose default is what it does anyway. Each other value
//! is an *honest* variant: a device that chooses differently and is still
//! right. The suite's client cases must pass every one of them
//! (docs/SUITE.md "Honest variants").

use crate::tls::TlsVersions;
use std::time::Duration;

/// One choice per field; `ClientChoices::default()` is the reference client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientChoices {
    /// Generate an Ed25519 key instead of ECDSA P-256 (`provreq.key-optional`:
    /// a server may issue for it; the suite's servers do).
    pub ed25519_key: bool,
    /// Send no `csrPEM` even to a server that advertises `csr`
    /// (`csr.client-valid` is a MAY).
    pub no_csr: bool,
    /// Keep the current key on renewal instead of generating a new one
    /// (`client.renewal` asks for mutual TLS and a checked set, not a new key).
    pub keep_key_on_renewal: bool,
    /// The TLS versions offered (`transport.https`: 1.2 or 1.3).
    pub tls: TlsVersions,
    /// Offer `http/1.1` by ALPN (the reference offers no ALPN).
    pub alpn_http11: bool,
    /// Wait half as long again as `retrySec`, plus a second, before asking
    /// again (`client.waiting` asks for no sooner than `retrySec`).
    pub wait_longer: bool,
    /// Send a MAC address in `mac` (the reference sends `""`, PROTOCOL §5).
    pub send_mac: bool,
}

impl ClientChoices {
    /// How long to wait after a Waiting answer that hinted `hinted` seconds,
    /// within the device's own bound `max` (at least a second).
    pub fn retry_wait(&self, hinted: u64, max: Duration) -> Duration {
        let wanted = if self.wait_longer {
            Duration::from_secs(hinted) * 3 / 2 + Duration::from_secs(1)
        } else {
            Duration::from_secs(hinted)
        };
        wanted.min(max).max(Duration::from_secs(1))
    }
}

/// A locally administered MAC address derived from the device ID, for the
/// `send_mac` choice (a device would send its interface's).
pub fn mac_for(device_id: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(device_id.as_bytes());
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        h[0], h[1], h[2], h[3], h[4]
    )
}

/// A named honest choice, as `idprov client --choice NAME` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientChoice {
    /// An Ed25519 key instead of ECDSA P-256.
    Ed25519Key,
    /// No CSR, even when the server advertises `csr`.
    NoCsr,
    /// The same key again on renewal.
    KeepKeyOnRenewal,
    /// TLS 1.2 only.
    Tls12Only,
    /// TLS 1.3 only.
    Tls13Only,
    /// `http/1.1` offered by ALPN.
    AlpnHttp11,
    /// Waits longer than `retrySec`.
    WaitLonger,
    /// A MAC address in `mac`.
    SendMac,
}

impl ClientChoice {
    /// Every choice, for running the suite against each.
    pub const ALL: &'static [ClientChoice] = &[
        ClientChoice::Ed25519Key,
        ClientChoice::NoCsr,
        ClientChoice::KeepKeyOnRenewal,
        ClientChoice::Tls12Only,
        ClientChoice::Tls13Only,
        ClientChoice::AlpnHttp11,
        ClientChoice::WaitLonger,
        ClientChoice::SendMac,
    ];

    /// Its command-line name.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    }
}

impl FromIterator<ClientChoice> for ClientChoices {
    fn from_iter<I: IntoIterator<Item = ClientChoice>>(iter: I) -> Self {
        let mut c = ClientChoices::default();
        for choice in iter {
            match choice {
                ClientChoice::Ed25519Key => c.ed25519_key = true,
                ClientChoice::NoCsr => c.no_csr = true,
                ClientChoice::KeepKeyOnRenewal => c.keep_key_on_renewal = true,
                ClientChoice::Tls12Only => c.tls = TlsVersions::Only12,
                ClientChoice::Tls13Only => c.tls = TlsVersions::Only13,
                ClientChoice::AlpnHttp11 => c.alpn_http11 = true,
                ClientChoice::WaitLonger => c.wait_longer = true,
                ClientChoice::SendMac => c.send_mac = true,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_never_shorter_than_the_hint_within_the_bound() {
        let max = Duration::from_secs(30);
        let honest = ClientChoices::default();
        assert_eq!(ClientChoice::WaitLonger.name(), "wait-longer");
        let longer: ClientChoices = [ClientChoice::WaitLonger].into_iter().collect();
        for hinted in [0, 1, 2, 5, 29, 30, 31, 86_400] {
            let a = honest.retry_wait(hinted, max);
            let b = longer.retry_wait(hinted, max);
            assert!(a >= Duration::from_secs(hinted).min(max));
            assert!(b >= a && b <= max.max(Duration::from_secs(1)));
        }
        assert_eq!(longer.retry_wait(2, max), Duration::from_secs(4));
    }
}
