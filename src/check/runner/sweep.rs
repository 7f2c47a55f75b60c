//! Boundary sweeps (`sweep`): one variable-size field tried at every length
//! and value around the limits the profile, the encodings and the usual
//! buffer sizes imply, each judged by what the profile says of it — where
//! one size per case would pass a server whose limit is merely elsewhere.

use super::*;
use crate::check::scenario::{Expect, StatusSpec, SweepField};

/// Secret lengths (UTF-8 bytes): both sides of the powers of two, of
/// SHA-256's block (an HMAC key over 64 bytes is hashed first), of
/// bcrypt's 72, and a few kilobytes.
pub(super) const SECRET_LENGTHS: &[usize] = &[
    1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 71, 72, 73, 127, 128, 129, 255, 256, 257, 1024, 4096,
];

/// Secrets that JSON escapes or UTF-8 spreads over several bytes.
pub(super) const SECRET_VALUES: &[&str] = &[
    "with \"quotes\" and a \\ backslash",
    "üñíçødé",
    "😀 outside the BMP",
    " leading and trailing space ",
    "tab\tand\nnewline",
    "</script>&amp;",
];

/// Device-ID lengths: the profile's 1–128, and past it.
pub(super) const DEVICE_ID_LENGTHS: &[usize] = &[1, 2, 16, 32, 63, 64, 65, 72, 127, 128, 129, 256];

/// Device IDs from every corner of the profile's alphabet
/// (`[A-Za-z0-9._:-]`, neither `.` nor `..`); `{u}` is a fresh token.
pub(super) const DEVICE_ID_VALUES: &[&str] = &[
    ".{u}",
    "{u}.",
    "..{u}",
    "{u}..x",
    "{u}:b",
    "{u}_b",
    "_{u}",
    "-{u}",
    ":{u}",
    "{u}-A:z_9.",
];

/// `validUntil` values every server must take: seconds ahead of the
/// target's clock with the offset they are written in, or a fixed instant.
enum Until {
    In(i64, time::UtcOffset),
    Fraction(i64),
    At(&'static str),
}

const UNTIL: &[Until] = &[
    Until::In(60, time::UtcOffset::UTC),
    Until::In(3_600, time::UtcOffset::UTC),
    // The default life, and one second past it.
    Until::In(259_200, time::UtcOffset::UTC),
    Until::In(259_201, time::UtcOffset::UTC),
    Until::In(31_536_000, time::UtcOffset::UTC),
    Until::In(315_360_000, time::UtcOffset::UTC),
    // The widest offsets RFC 3339 text carries in practice.
    Until::In(3_600, time::macros::offset!(+14:00)),
    Until::In(3_600, time::macros::offset!(-12:00)),
    Until::Fraction(3_600),
    // One second past a signed 32-bit time_t.
    Until::At("2038-01-19T03:14:08Z"),
    Until::At("2100-01-01T00:00:00Z"),
];

impl Until {
    fn text(&self, now: OffsetDateTime) -> String {
        match *self {
            Until::In(secs, offset) => {
                rfc3339((now + time::Duration::seconds(secs)).to_offset(offset))
            }
            Until::Fraction(secs) => {
                let t = (now + time::Duration::seconds(secs))
                    .replace_nanosecond(123_456_789)
                    .unwrap_or(now);
                rfc3339(t)
            }
            Until::At(t) => t.to_string(),
        }
    }
}

/// A secret of `n` bytes (printable ASCII, fresh each time).
fn secret_of(rng: &mut ChaCha20Rng, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~.";
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `s` with its last character replaced: another secret, equal in every
/// byte but the last ones.
fn last_changed(s: &str) -> String {
    let mut t: String = s
        .chars()
        .take(s.chars().count().saturating_sub(1))
        .collect();
    t.push(if s.ends_with('x') { 'y' } else { 'x' });
    t
}

impl Case<'_> {
    pub(super) async fn do_sweep(&mut self, st: &Step) -> StepResult {
        match st.field {
            Some(SweepField::SecretLength) => self.sweep_secrets().await,
            Some(SweepField::DeviceId) => self.sweep_device_ids().await,
            Some(SweepField::ValidUntil) => self.sweep_valid_until().await,
            Some(SweepField::Signature) => self.sweep_signatures().await,
            Some(SweepField::PublicKey) => self.sweep_public_keys().await,
            Some(SweepField::Csr) => self.sweep_csrs().await,
            Some(SweepField::BodySize) => self.sweep_body_sizes().await,
            None => fail("a sweep needs a `field`"),
        }
    }

    /// A fresh device ID of exactly `n` characters.
    fn id_of_length(&mut self, n: usize) -> String {
        let base = self.device(&format!("sweep-{n}"));
        let mut id: String = base
            .chars()
            .rev()
            .take(n)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        while id.len() < n {
            id.push('0');
        }
        id
    }

    /// Posts `secret` for `device` as admin with `valid_until` (JSON) and
    /// returns the HTTP status.
    pub(super) async fn post_secret(
        &mut self,
        device: &str,
        secret: &str,
        valid_until: &str,
    ) -> Result<u16, StepError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "deviceID": device, "oobSecret": secret, "validUntil": valid_until
        }))
        .unwrap_or_default();
        let url = self.oob_url().await;
        let r = self
            .call(Method::POST, &url, Some(body), "admin")
            .await
            .map_err(|e| StepError::Fail(format!("no answer: {e}")))?;
        self.check_http(&Step::default(), &r)?;
        if r.status == 200 {
            self.posted.insert(device.to_string(), secret.to_string());
        }
        Ok(r.status)
    }

    /// A provisioning request for `device` signed with `secret`, judged by
    /// `expect` (and by everything every answer is judged by).
    async fn provision_with(&mut self, device: &str, secret: &str, expect: Expect) -> StepResult {
        let step = Step {
            action: Some(Action::Provision),
            device_literal: Some(device.to_string()),
            secret_literal: Some(secret.to_string()),
            expect,
            ..Step::default()
        };
        self.do_provision(&step).await
    }

    /// Every secret length and value: posted, then a request signed with
    /// the secret changed in its last character is Rejected, and one
    /// signed with the secret is Approved with an answer signed with it
    /// (`hmac.raw-key`, `oob.fields`: nothing in the profile bounds a
    /// secret's length or alphabet).
    async fn sweep_secrets(&mut self) -> StepResult {
        let mut secrets: Vec<String> = SECRET_LENGTHS
            .iter()
            .map(|&n| secret_of(&mut self.rng, n))
            .collect();
        secrets.extend(SECRET_VALUES.iter().map(|v| v.to_string()));
        for (k, secret) in secrets.iter().enumerate() {
            let what = format!(
                "a secret of {} bytes ({})",
                secret.len(),
                SECRET_VALUES
                    .iter()
                    .find(|v| *v == secret)
                    .map_or("random printable ASCII".to_string(), |v| format!("{v:?}"))
            );
            let device = self.device(&format!("secret-{k}"));
            let code = self.post_secret(&device, secret, "").await?;
            if code != 200 {
                return fail(format!("{what}: the OOB post got HTTP {code}, not 200"));
            }
            let other = last_changed(secret);
            let rejected = Expect {
                http: Some(vec![200]),
                status: Some(StatusSpec::Rejected),
                certificate: Some(false),
                ..Expect::default()
            };
            self.provision_with(&device, &other, rejected)
                .await
                .map_err(|e| {
                    in_terms(
                        e,
                        &format!("{what}, signed with it changed in its last character"),
                    )
                })?;
            let approved = Expect {
                signature: Some(crate::check::scenario::SignatureSpec::Secret),
                ..approved()
            };
            self.provision_with(&device, secret, approved)
                .await
                .map_err(|e| in_terms(e, &format!("{what}, signed with it")))?;
        }
        Ok(None)
    }

    /// Every device-ID length and corner of the alphabet: an OOB post and
    /// an admin provisioning are accepted (a certificate whose CN is the
    /// ID byte for byte) up to 128 characters and refused with 400 past it
    /// (`provreq.device-id`, `oob.fields`).
    async fn sweep_device_ids(&mut self) -> StepResult {
        let mut ids: Vec<(String, bool)> = DEVICE_ID_LENGTHS
            .iter()
            .map(|&n| (self.id_of_length(n), n <= 128))
            .collect();
        let u: u32 = self.rng.gen();
        ids.extend(DEVICE_ID_VALUES.iter().map(|v| {
            (
                v.replace("{u}", &format!("{:08x}{u:08x}", self.ctx.run_id)),
                true,
            )
        }));
        for (id, accepted) in ids {
            let what = format!("device ID {:?} ({} characters)", shorten(&id), id.len());
            let code = self.post_secret(&id, "sweep-secret", "").await?;
            let want = if accepted { 200 } else { 400 };
            if code != want {
                return fail(format!("{what}: the OOB post got HTTP {code}, not {want}"));
            }
            let expect = if accepted {
                approved()
            } else {
                Expect {
                    http: Some(vec![400]),
                    ..Expect::default()
                }
            };
            let step = Step {
                action: Some(Action::Provision),
                device_literal: Some(id.clone()),
                secret: Some("none".into()),
                as_: Some(crate::check::scenario::Credential::Admin),
                expect,
                ..Step::default()
            };
            self.do_provision(&step)
                .await
                .map_err(|e| in_terms(e, &format!("{what}, provisioned as admin")))?;
        }
        Ok(None)
    }

    /// Every `validUntil` a server must take — up to ten years ahead, the
    /// widest offsets, fractional seconds, past 2038 — is accepted and the
    /// secret is usable now (`oob.valid-until`).
    async fn sweep_valid_until(&mut self) -> StepResult {
        for (k, until) in UNTIL.iter().enumerate() {
            let text = until.text(super::target_now(self.ctx));
            let device = self.device(&format!("until-{k}"));
            let secret = self.secret(&format!("until-{k}"));
            let code = self.post_secret(&device, &secret, &text).await?;
            if code != 200 {
                return fail(format!(
                    "validUntil {text:?}: the OOB post got HTTP {code}, not 200"
                ));
            }
            let approved = approved();
            self.provision_with(&device, &secret, approved)
                .await
                .map_err(|e| {
                    in_terms(e, &format!("validUntil {text:?}, the secret used at once"))
                })?;
        }
        Ok(None)
    }
}

/// Wrong signatures near the right tag `t` (32 bytes): each must be
/// refused, however much of it is right.
fn near_tags(t: &[u8]) -> Vec<(&'static str, String)> {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let flipped = |i: usize| {
        let mut x = t.to_vec();
        x[i] ^= 0x01;
        b64(&x)
    };
    let right = b64(t);
    let swapped: String = right
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let mut longer = t.to_vec();
    longer.push(0);
    vec![
        (
            "the right tag with its last bit flipped",
            flipped(t.len() - 1),
        ),
        ("the right tag with its first bit flipped", flipped(0)),
        ("the right tag's first 16 bytes", b64(&t[..16])),
        ("the right tag's first 31 bytes", b64(&t[..31])),
        ("the right tag and one byte more", b64(&longer)),
        (
            "the right tag in hex",
            t.iter().map(|b| format!("{b:02x}")).collect(),
        ),
        ("the right tag with its letters' case swapped", swapped),
        (
            "the right tag with a space inside",
            format!("{} {}", &right[..20], &right[20..]),
        ),
        ("an empty signature", String::new()),
    ]
}

impl Case<'_> {
    /// Signatures around the right one — a bit off, cut short, one byte
    /// long, in hex, case-swapped — are each refused (Rejected, or a 4xx
    /// for what is not base64), and the right one is then Approved
    /// (`provreq.rejected`, `hmac.raw-key`). Each wrong one is tried on a
    /// secret of its own, so the guess limit never comes into it.
    async fn sweep_signatures(&mut self) -> StepResult {
        let url = self.provreq_url().await;
        let n = near_tags(&[0u8; 32]).len();
        for k in 0..n {
            let device = self.device(&format!("sig-{k}"));
            let secret = self.secret(&format!("sig-{k}"));
            let code = self.post_secret(&device, &secret, "").await?;
            if code != 200 {
                return fail(format!("the OOB post got HTTP {code}, not 200"));
            }
            let step = Step {
                device_literal: Some(device.clone()),
                secret_literal: Some(secret.clone()),
                ..Step::default()
            };
            let (body, _) = self.build_request(&step, &device)?;
            let blanked =
                sign::blank_signature(&body).map_err(|e| StepError::Fail(format!("setup: {e}")))?;
            let right = sign::tag(secret.as_bytes(), &blanked.signing_input);
            let (what, wrong) = near_tags(&right).swap_remove(k);
            let sent = String::from_utf8_lossy(&blanked.signing_input).replacen(
                "\"signature\":\"\"",
                &format!("\"signature\":{}", Value::String(wrong)),
                1,
            );
            let r = self
                .call(Method::POST, &url, Some(sent.into_bytes()), "nobody")
                .await
                .map_err(|e| StepError::Fail(format!("{what}: no answer: {e}")))?;
            self.check_http(&Step::default(), &r)
                .map_err(|e| in_terms(e, what))?;
            let status = resp_json(&r)
                .and_then(|v| v["status"].as_str().map(str::to_string))
                .unwrap_or_default();
            let refused =
                (r.status == 200 && status == "Rejected") || (400..500).contains(&r.status);
            if !refused {
                return fail(format!(
                    "{what}: answered HTTP {} {status}, not Rejected (provreq.rejected)",
                    r.status
                ));
            }
            let approved = approved();
            self.provision_with(&device, &secret, approved)
                .await
                .map_err(|e| in_terms(e, &format!("after {what}, the right signature")))?;
        }
        Ok(None)
    }
}

/// RSA modulus sizes in bits: far under the 2,048-bit floor, at whole
/// bytes under it, every size a byte-granular count rounds up to 2,048,
/// the floor itself and just over it, and the usual sizes up to 16,384
/// (which a server may refuse, as every RSA key, with 400).
pub(super) const RSA_BITS: &[usize] = &[
    1024, 2040, 2041, 2047, 2048, 2049, 2056, 3072, 4096, 8192, 16384,
];

/// A DER length.
fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

/// A DER element of `tag` around `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

/// An RSA `PUBLIC KEY` (SubjectPublicKeyInfo, exponent 65537) whose
/// modulus has exactly `bits` bits. The modulus is random and odd, not a
/// product of two primes: a server can tell a key's size, never whether
/// it is a real RSA key, so this is what it must judge.
pub(super) fn rsa_public_key_pem(bits: usize, rng: &mut ChaCha20Rng) -> String {
    let bytes = bits.div_ceil(8);
    let mut modulus: Vec<u8> = (0..bytes).map(|_| rng.gen()).collect();
    let top_bits = bits - 8 * (bytes - 1);
    modulus[0] &= 0xffu8 >> (8 - top_bits);
    modulus[0] |= 1 << (top_bits - 1);
    if let Some(last) = modulus.last_mut() {
        *last |= 1;
    }
    if modulus[0] & 0x80 != 0 {
        modulus.insert(0, 0);
    }
    let mut rsa = der(0x02, &modulus);
    rsa.extend(der(0x02, &[0x01, 0x00, 0x01]));
    let rsa = der(0x30, &rsa);
    let mut alg = der(
        0x06,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
    );
    alg.extend([0x05, 0x00]);
    let mut bit_string = vec![0u8];
    bit_string.extend(rsa);
    let mut spki = der(0x30, &alg);
    spki.extend(der(0x03, &bit_string));
    crate::pki::pem_encode("PUBLIC KEY", &der(0x30, &spki))
}

impl Case<'_> {
    /// Every RSA size around the floor: under 2,048 bits → 400 to the bit
    /// (`provreq.key`); from 2,048 bits a server may issue, with the
    /// certificate carrying exactly that key, or answer 400 as for any RSA
    /// key (`provreq.key-optional`). Each key on a secret of its own.
    async fn sweep_public_keys(&mut self) -> StepResult {
        for (k, &bits) in RSA_BITS.iter().enumerate() {
            let what = format!("an RSA key of {bits} bits");
            let device = self.device(&format!("rsa-{k}"));
            let secret = self.secret(&format!("rsa-{k}"));
            let code = self.post_secret(&device, &secret, "").await?;
            if code != 200 {
                return fail(format!("{what}: the OOB post got HTTP {code}, not 200"));
            }
            let pem = rsa_public_key_pem(bits, &mut self.rng);
            let weak = bits < crate::pki::MIN_RSA_BITS;
            let step = Step {
                action: Some(Action::Provision),
                device_literal: Some(device.clone()),
                secret_literal: Some(secret.clone()),
                key_pem_literal: Some(pem),
                expect: Expect {
                    http: Some(if weak { vec![400] } else { vec![200, 400] }),
                    ..Expect::default()
                },
                ..Step::default()
            };
            self.do_provision(&step)
                .await
                .map_err(|e| in_terms(e, &what))?;
            if let Some((200, body)) = &self.last_response {
                let v: Value = serde_json::from_slice(body).unwrap_or_default();
                if v["status"] != "Approved" || v["clientCert"].as_str().unwrap_or("").is_empty() {
                    return fail(format!(
                        "{what}: answered HTTP 200 {}, not Approved with a certificate or 400 (provreq.key-optional)",
                        v["status"].as_str().unwrap_or("(no status)")
                    ));
                }
            }
        }
        Ok(None)
    }
}

/// Body sizes in bytes: around one TLS record (16 KiB), half the limit,
/// the 64 KiB limit to the byte, and past it to 1 MiB.
pub(super) const BODY_SIZES: &[usize] = &[
    16_383, 16_384, 16_385, 32_768, 65_535, 65_536, 65_537, 65_540, 81_920, 131_072, 1_048_576,
];

impl Case<'_> {
    /// An admin provisioning padded (with JSON whitespace) to every size in
    /// [`BODY_SIZES`]: up to 65,536 bytes → Approved with a certificate;
    /// beyond → 413, and the server then serves a plain request.
    async fn sweep_body_sizes(&mut self) -> StepResult {
        for (k, &n) in BODY_SIZES.iter().enumerate() {
            let what = format!("a request of {n} bytes");
            let over = n > crate::core::messages::MAX_BODY;
            let padded = Step {
                action: Some(Action::Provision),
                device: Some(format!("body-{k}")),
                secret: Some("none".into()),
                as_: Some(crate::check::scenario::Credential::Admin),
                body_size: Some(n),
                expect: if over {
                    Expect {
                        http: Some(vec![413]),
                        ..Expect::default()
                    }
                } else {
                    approved()
                },
                ..Step::default()
            };
            self.do_provision(&padded)
                .await
                .map_err(|e| in_terms(e, &what))?;
            if over {
                let plain = Step {
                    action: Some(Action::Provision),
                    device: Some(format!("after-body-{k}")),
                    secret: Some("none".into()),
                    as_: Some(crate::check::scenario::Credential::Admin),
                    expect: approved(),
                    ..Step::default()
                };
                self.do_provision(&plain)
                    .await
                    .map_err(|e| in_terms(e, &format!("after {what}, a plain request")))?;
            }
        }
        Ok(None)
    }
}

/// A failure said in terms of the value swept.
pub(super) fn in_terms(e: StepError, what: &str) -> StepError {
    match e {
        StepError::Fail(m) => StepError::Fail(format!("{what}: {m}")),
        other => other,
    }
}

/// An ID cut for a message.
fn shorten(id: &str) -> String {
    if id.len() <= 40 {
        id.to_string()
    } else {
        format!("{}…", &id[..40])
    }
}
