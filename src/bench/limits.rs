//! The physical limits of this machine, from `openssl speed` run in the same
//! process tree, so every throughput figure can be stated as a ratio.

use std::process::Command;

/// Operations per second OpenSSL reaches here.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// ECDSA P-256 signatures per second.
    pub ecdsa_p256_sign_per_s: Option<f64>,
    /// Ed25519 signatures per second.
    pub ed25519_sign_per_s: Option<f64>,
    /// HMAC-SHA256 operations per second at `hmac_bytes`.
    pub hmac_sha256_per_s: Option<f64>,
    /// Message size of the HMAC figure.
    pub hmac_bytes: usize,
}

fn speed(args: &[&str]) -> Option<String> {
    let out = Command::new("openssl")
        .arg("speed")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses the sign/s column of `openssl speed ecdsap256|ed25519` output.
pub fn parse_sign_rate(text: &str, marker: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.contains(marker))?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|t| t.parse::<f64>().ok())
        .collect();
    // "... <sign s> <verify s> <sign/s> <verify/s>": sign/s is second last.
    nums.len().checked_sub(2).and_then(|i| nums.get(i)).copied()
}

/// Parses `hmac(sha256)  608570.41k` into bytes per second.
pub fn parse_hmac_rate(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("hmac(sha256)"))?;
    let v = line.split_whitespace().nth(1)?;
    let k = v.strip_suffix('k')?;
    k.parse::<f64>().ok().map(|x| x * 1000.0)
}

/// Runs `openssl speed` (about `seconds` per figure); `None` figures when
/// openssl is absent.
pub fn measure(seconds: u32, hmac_bytes: usize) -> Limits {
    let s = seconds.max(1).to_string();
    let b = hmac_bytes.max(1).to_string();
    Limits {
        ecdsa_p256_sign_per_s: speed(&["-seconds", &s, "ecdsap256"])
            .and_then(|t| parse_sign_rate(&t, "ecdsa (nistp256)")),
        ed25519_sign_per_s: speed(&["-seconds", &s, "ed25519"])
            .and_then(|t| parse_sign_rate(&t, "EdDSA (Ed25519)")),
        hmac_sha256_per_s: speed(&["-seconds", &s, "-bytes", &b, "-hmac", "sha256"])
            .and_then(|t| parse_hmac_rate(&t))
            .map(|bps| bps / hmac_bytes.max(1) as f64),
        hmac_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_output() {
        let ec = " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  32843.5  11040.0";
        assert_eq!(parse_sign_rate(ec, "ecdsa (nistp256)"), Some(32843.5));
        let ed = " 253 bits EdDSA (Ed25519)   0.0001s   0.0002s  18259.0   6059.4";
        assert_eq!(parse_sign_rate(ed, "EdDSA (Ed25519)"), Some(18259.0));
        let h = "type            400 bytes\nhmac(sha256)    608570.41k\n";
        assert_eq!(parse_hmac_rate(h), Some(608_570_410.0));
    }
}
