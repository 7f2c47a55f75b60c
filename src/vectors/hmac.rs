//! `oob_hmac.json`: signing and verifying messages (PROTOCOL §6).

use super::{note, Expected, Ids, Tally, VectorError, VectorFile};
use crate::core::json::encode_members;
use crate::core::messages::{ProvisionRequest, Signed};
use crate::core::sign::{self, KeyVariant};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

const KEY: &str = include_str!("fixtures/p256.pub");
const MARK: &str = "@@SIG@@";

/// A group of HMAC cases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct HmacGroup {
    /// `RequestVerify`, `ResponseVerify`, `GoReference` or `RequestSign`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the group holds.
    pub comment: String,
    /// Cases.
    pub tests: Vec<HmacTest>,
}

/// The vector file's `request` object: the members a sender signs
/// (`RequestSign`), taken from the request it signed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignFields {
    /// deviceID.
    #[serde(rename = "deviceID")]
    pub device_id: String,
    /// ip.
    pub ip: String,
    /// mac.
    pub mac: String,
    /// publicKeyPEM.
    #[serde(rename = "publicKeyPEM")]
    pub public_key_pem: String,
}

impl From<&ProvisionRequest> for SignFields {
    fn from(r: &ProvisionRequest) -> Self {
        Self {
            device_id: r.device_id.clone(),
            ip: r.ip.clone(),
            mac: r.mac.clone(),
            public_key_pem: r.public_key_pem.clone(),
        }
    }
}

/// One HMAC case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct HmacTest {
    /// Stable id.
    pub tc_id: u32,
    /// What it checks.
    pub comment: String,
    /// Kinds of bug it catches.
    pub flags: Vec<String>,
    /// Rules of docs/PROTOCOL.md the case checks (from its group and flags).
    #[serde(default)]
    pub rules: Vec<String>,
    /// The OOB secret (HMAC key = its UTF-8 bytes).
    pub secret: String,
    /// Verify groups: the message as received. Sign group: the exact bytes
    /// a sender must produce.
    pub message: String,
    /// For valid verify cases: the bytes the HMAC covers (raw blanking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_input: Option<String>,
    /// Sign group: the fields to sign, in wire order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<SignFields>,
    /// Expected result.
    pub result: Expected,
}

fn fields(device: &str, ip: &str, mac: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("deviceID", Value::from(device)),
        ("ip", Value::from(ip)),
        ("mac", Value::from(mac)),
        ("publicKeyPEM", Value::from(KEY)),
        ("signature", Value::from(MARK)),
    ]
}

fn text(members: &[(&str, Value)]) -> String {
    String::from_utf8(encode_members(members)).unwrap_or_default()
}

/// Signs a template whose signature value is [`MARK`]: the HMAC covers the
/// template with the mark removed; the mark is then replaced by the tag.
fn sign_template(template: &str, key: &[u8]) -> (String, String) {
    let input = template.replacen(MARK, "", 1);
    let tag = sign::tag_b64(key, input.as_bytes());
    (template.replacen(MARK, &tag, 1), input)
}

struct Builder {
    ids: Ids,
    groups: Vec<HmacGroup>,
}

impl Builder {
    fn group(&mut self, kind: &str, comment: &str) {
        self.groups.push(HmacGroup {
            kind: kind.into(),
            comment: comment.into(),
            tests: Vec::new(),
        });
    }

    fn add(
        &mut self,
        comment: &str,
        flags: &[&str],
        secret: &str,
        message: String,
        result: Expected,
    ) {
        let signing_input = if result == Expected::Valid {
            sign::blank_signature(message.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b.signing_input).ok())
        } else {
            None
        };
        self.push(HmacTest {
            tc_id: 0,
            comment: comment.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            rules: Vec::new(),
            secret: secret.into(),
            message,
            signing_input,
            request: None,
            result,
        });
    }

    fn push(&mut self, mut t: HmacTest) {
        t.tc_id = self.ids.next();
        if let Some(g) = self.groups.last_mut() {
            g.tests.push(t);
        }
    }

    /// A template signed with `secret` under `variant`.
    fn signed(
        &mut self,
        comment: &str,
        flags: &[&str],
        secret: &str,
        template: &str,
        variant: KeyVariant,
        result: Expected,
    ) {
        let (msg, _) = sign_template(template, &variant.key(secret));
        self.add(comment, flags, secret, msg, result);
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

const CAP05: &str =
    include_str!("../../tests/fixtures/go-reference/05-post-provreq-correct-secret.request.body");
const CAP05R: &str =
    include_str!("../../tests/fixtures/go-reference/05-post-provreq-correct-secret.response.body");
const CAP11: &str = include_str!(
    "../../tests/fixtures/go-reference/11-post-provreq-correct-after-51-wrong.request.body"
);
const CAP11R: &str = include_str!(
    "../../tests/fixtures/go-reference/11-post-provreq-correct-after-51-wrong.response.body"
);
const CAP13: &str = include_str!(
    "../../tests/fixtures/go-reference/13-post-provreq-key-sha256-of-secret.request.body"
);
const CAP14: &str = include_str!("../../tests/fixtures/go-reference/14-post-provreq-signed-without-mac-and-signature-fields.request.body");
const CAP15: &str = include_str!("../../tests/fixtures/go-reference/15-post-provreq-reordered-fields-unknown-field-raw-key.request.body");
const CAP41R: &str = include_str!(
    "../../tests/fixtures/go-reference/41-post-provreq-admin-cert-no-secret.response.body"
);
const CAP42: &str = include_str!(
    "../../tests/fixtures/go-reference/42-post-provreq-iotdevice-cert-renew-own.request.body"
);
const CAP42R: &str = include_str!(
    "../../tests/fixtures/go-reference/42-post-provreq-iotdevice-cert-renew-own.response.body"
);
const CAP46: &str =
    include_str!("../../tests/fixtures/go-reference/46-post-provreq-deviceid-dotdot.request.body");
const CAP61: &str = include_str!("../../tests/fixtures/go-reference/61-goclient.request.body");
const CAP61R: &str = include_str!("../../tests/fixtures/go-reference/61-goclient.response.body");

/// Builds the file.
pub(super) fn generate() -> Result<VectorFile<HmacGroup>, VectorError> {
    use Expected::{Acceptable, Invalid, Valid};
    let raw = KeyVariant::Raw;
    let mut b = Builder {
        ids: Ids::new(),
        groups: Vec::new(),
    };
    let base = text(&fields("dev-1", "192.0.2.7", ""));

    b.group("RequestVerify", "Provisioning requests as received; verify by raw blanking with HMAC-SHA256 keyed with the secret's UTF-8 bytes.");
    b.signed(
        "request in the Go reference's form",
        &["Normal"],
        "secret1",
        &base,
        raw,
        Valid,
    );
    b.signed("one-character secret", &["Normal"], "s", &base, raw, Valid);
    b.signed(
        "secret with spaces",
        &["Normal"],
        "correct horse battery staple",
        &base,
        raw,
        Valid,
    );
    b.signed(
        "non-ASCII secret (UTF-8 bytes are the key)",
        &["NonAsciiSecret"],
        "pässwörd-ü",
        &base,
        raw,
        Valid,
    );
    b.signed(
        "empty key (renewal and admin answers use it)",
        &["EmptyKey"],
        "",
        &base,
        raw,
        Valid,
    );
    for n in [64usize, 65, 200] {
        let secret: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        b.signed(
            &format!("{n}-byte secret (HMAC hashes keys longer than 64 bytes)"),
            &["LongSecret"],
            &secret,
            &base,
            raw,
            Valid,
        );
    }
    b.signed(
        "keyed with SHA-256(secret), as the standard's prose says: not the normative key",
        &["Sha256Key"],
        "secret1",
        &base,
        KeyVariant::Sha256OfSecret,
        Invalid,
    );
    let f = fields("dev-1", "192.0.2.7", "");
    for (i, order) in [
        [4, 3, 2, 1, 0],
        [1, 0, 2, 3, 4],
        [0, 4, 1, 2, 3],
        [3, 1, 4, 0, 2],
        [2, 3, 0, 4, 1],
    ]
    .iter()
    .enumerate()
    {
        let members: Vec<(&str, Value)> = order.iter().map(|&k| f[k].clone()).collect();
        b.signed(
            &format!(
                "fields in another order ({}), signed over the bytes sent",
                i + 1
            ),
            &["FieldOrder"],
            "secret1",
            &text(&members),
            raw,
            Valid,
        );
    }
    let mut extra = f.clone();
    extra.insert(3, ("firmware", Value::from("1.2.3")));
    b.signed(
        "an unknown member, signed over the bytes sent",
        &["UnknownField"],
        "secret1",
        &text(&extra),
        raw,
        Valid,
    );
    let pretty = format!(
        "{{\n  \"deviceID\": \"dev-1\",\n  \"ip\": \"192.0.2.7\",\n  \"mac\": \"\",\n  \"publicKeyPEM\": {},\n  \"signature\": \"{MARK}\"\n}}",
        serde_json::to_string(KEY).unwrap_or_default()
    );
    b.signed(
        "pretty-printed, signed over the bytes sent",
        &["Whitespace"],
        "secret1",
        &pretty,
        raw,
        Valid,
    );
    b.signed(
        "spaces after colons and commas",
        &["Whitespace"],
        "secret1",
        &base.replace("\":", "\": ").replace(",\"", ", \""),
        raw,
        Valid,
    );
    b.signed(
        "leading and trailing whitespace",
        &["Whitespace"],
        "secret1",
        &format!(" \n{base}\n "),
        raw,
        Valid,
    );
    b.signed(
        "tabs between members",
        &["Whitespace"],
        "secret1",
        &base.replace(",\"", ",\t\""),
        raw,
        Valid,
    );
    b.signed(
        "<, > and & escaped as Go does (\\u003c \\u003e \\u0026)",
        &["GoEscaping"],
        "secret1",
        &text(&fields("dev-1", "192.0.2.7", "<a&b>")),
        raw,
        Valid,
    );
    let literal = base.replace("\"mac\":\"\"", "\"mac\":\"<a&b>\"");
    b.signed(
        "<, > and & sent literally and signed over those bytes (a receiver that re-escapes fails)",
        &["RawBytes"],
        "secret1",
        &literal,
        raw,
        Valid,
    );
    b.signed(
        "U+2028 and U+2029 escaped as Go does",
        &["GoEscaping"],
        "secret1",
        &text(&fields("dev-1", "192.0.2.7", "a\u{2028}b\u{2029}c")),
        raw,
        Valid,
    );
    let literal = base.replace("\"mac\":\"\"", "\"mac\":\"a\u{2028}b\"");
    b.signed(
        "U+2028 sent literally",
        &["RawBytes"],
        "secret1",
        &literal,
        raw,
        Valid,
    );
    for (m, what) in [
        ("é", "Latin-1 letter"),
        ("日本", "CJK"),
        ("😀", "a character outside the BMP"),
    ] {
        b.signed(
            &format!("non-ASCII text ({what}) sent as UTF-8"),
            &["NonAscii"],
            "secret1",
            &text(&fields("dev-1", "192.0.2.7", m)),
            raw,
            Valid,
        );
    }
    let escaped = base.replace("\"mac\":\"\"", "\"mac\":\"\\u00e9\"");
    b.signed(
        "non-ASCII text sent as a \\u escape",
        &["NonAscii", "EscapedText"],
        "secret1",
        &escaped,
        raw,
        Valid,
    );
    b.signed(
        "a \"signature\" member inside another string",
        &["SignatureInString"],
        "secret1",
        &text(&fields("dev-1", "192.0.2.7", "\"signature\":\"AAAA\"")),
        raw,
        Valid,
    );
    b.signed(
        "the value \"signature\" in another member",
        &["SignatureInString"],
        "secret1",
        &text(&fields("signature", "192.0.2.7", "")),
        raw,
        Valid,
    );
    let mut nested = f.clone();
    nested.insert(3, ("meta", serde_json::json!({"signature": "not-the-tag"})));
    b.signed(
        "a signature member in a nested object is not the signature",
        &["NestedSignature"],
        "secret1",
        &text(&nested),
        raw,
        Valid,
    );
    let mut nested2 = f.clone();
    nested2.insert(
        3,
        ("list", serde_json::json!([{"signature": "x"}, "signature"])),
    );
    b.signed(
        "a signature member in an array's object is not the signature",
        &["NestedSignature"],
        "secret1",
        &text(&nested2),
        raw,
        Valid,
    );
    // Duplicates and missing members.
    let (good, _) = sign_template(&base, b"secret1");
    let tag = serde_json::from_str::<Value>(&good)
        .ok()
        .and_then(|v| v["signature"].as_str().map(str::to_string))
        .unwrap_or_default();
    b.add(
        "two top-level signature members with the same valid tag",
        &["DuplicateSignature"],
        "secret1",
        good.replacen(
            "\"signature\"",
            &format!("\"signature\":\"{tag}\",\"signature\""),
            1,
        ),
        Invalid,
    );
    b.add(
        "two top-level signature members, the first empty",
        &["DuplicateSignature"],
        "secret1",
        good.replacen("\"signature\"", "\"signature\":\"\",\"signature\"", 1),
        Invalid,
    );
    let unsigned = text(&fields("dev-1", "192.0.2.7", "")[..4]);
    b.add(
        "no signature member",
        &["MissingSignature"],
        "secret1",
        unsigned,
        Invalid,
    );
    b.add(
        "signature is null",
        &["SignatureNotString"],
        "secret1",
        base.replacen(&format!("\"{MARK}\""), "null", 1),
        Invalid,
    );
    b.add(
        "signature is a number",
        &["SignatureNotString"],
        "secret1",
        base.replacen(&format!("\"{MARK}\""), "12345", 1),
        Invalid,
    );
    b.add(
        "signature is empty",
        &["EmptySignature"],
        "secret1",
        base.replacen(MARK, "", 1),
        Invalid,
    );
    b.add(
        "signature is not base64",
        &["BadBase64"],
        "secret1",
        base.replacen(MARK, "!!not base64!!", 1),
        Invalid,
    );
    // Find a tag with URL-unsafe characters so the URL-safe form differs.
    let mut urlsafe = None;
    for i in 0..1000 {
        let t = base.replace("dev-1", &format!("dev-{i}"));
        let tag = sign::tag_b64(b"secret1", t.replacen(MARK, "", 1).as_bytes());
        if tag.contains('+') || tag.contains('/') {
            urlsafe = Some(t.replacen(MARK, &tag.replace('+', "-").replace('/', "_"), 1));
            break;
        }
    }
    b.add(
        "tag in URL-safe base64",
        &["UrlSafeBase64"],
        "secret1",
        urlsafe.unwrap_or_default(),
        Invalid,
    );
    b.add(
        "tag without = padding",
        &["MissingPadding"],
        "secret1",
        good.replacen(&tag, tag.trim_end_matches('='), 1),
        Invalid,
    );
    let raw_tag = sign::tag(b"secret1", base.replacen(MARK, "", 1).as_bytes());
    b.add(
        "tag truncated to 16 bytes",
        &["TruncatedTag"],
        "secret1",
        good.replacen(&tag, &b64(&raw_tag[..16]), 1),
        Invalid,
    );
    let mut long = raw_tag.to_vec();
    long.push(0);
    b.add(
        "tag with a 33rd byte",
        &["LongTag"],
        "secret1",
        good.replacen(&tag, &b64(&long), 1),
        Invalid,
    );
    b.add(
        "tag in hex",
        &["HexTag"],
        "secret1",
        good.replacen(&tag, &crate::pki::hex(&raw_tag), 1),
        Invalid,
    );
    let (other, _) = sign_template(&base, b"secret2");
    b.add(
        "signed with another secret (secret2), verified with secret1",
        &["WrongSecret"],
        "secret1",
        other,
        Invalid,
    );
    for (field, from, to) in [
        ("deviceID", "\"dev-1\"", "\"dev-2\""),
        ("ip", "\"192.0.2.7\"", "\"192.0.2.8\""),
        ("mac", "\"mac\":\"\"", "\"mac\":\"02:00:00:00:00:01\""),
        ("publicKeyPEM", "MFkw", "MFkx"),
    ] {
        b.add(
            &format!("{field} changed after signing"),
            &["ModifiedField"],
            "secret1",
            good.replacen(from, to, 1),
            Invalid,
        );
    }
    b.add(
        "whitespace added after signing",
        &["ModifiedBytes"],
        "secret1",
        good.replacen(",\"ip\"", ", \"ip\"", 1),
        Invalid,
    );
    b.signed(
        "signature member name written with a \\u escape",
        &["EscapedKey"],
        "secret1",
        &base.replacen("\"signature\"", "\"sig\\u006eature\"", 1),
        raw,
        Acceptable,
    );
    b.add(
        "top level is an array",
        &["NotObject"],
        "secret1",
        format!("[{good}]"),
        Invalid,
    );
    b.add(
        "data after the object",
        &["TrailingData"],
        "secret1",
        format!("{good}{{}}"),
        Invalid,
    );
    b.add(
        "truncated JSON",
        &["InvalidJson"],
        "secret1",
        good[..good.len() - 1].to_string(),
        Invalid,
    );
    let mut deep = f.clone();
    let nest = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    deep.insert(
        3,
        ("deep", serde_json::from_str(&nest).unwrap_or(Value::Null)),
    );
    b.signed(
        "an extra member nested 100 deep (a receiver may refuse deep nesting)",
        &["DeepNesting"],
        "secret1",
        &text(&deep),
        raw,
        Acceptable,
    );
    let mut case_variant = f.clone();
    case_variant.insert(0, ("Signature", Value::from("junk")));
    b.signed(
        "a `Signature` member beside `signature` (Go matches member names case-insensitively)",
        &["CaseVariantKey"],
        "secret1",
        &text(&case_variant),
        raw,
        Acceptable,
    );

    b.group("ResponseVerify", "Provisioning responses as a device receives them; verify by raw blanking with the device's secret.");
    let resp = |retry: Option<u64>, status: &str, ca: &str, cert: &str| {
        let mut m: Vec<(&str, Value)> = Vec::new();
        if let Some(r) = retry {
            m.push(("retrySec", Value::from(r)));
        }
        m.extend([
            ("status", Value::from(status)),
            ("caCert", Value::from(ca)),
            ("clientCert", Value::from(cert)),
            ("signature", Value::from(MARK)),
        ]);
        text(&m)
    };
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let ca = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
    b.signed(
        "Approved, signed with the secret",
        &["Normal"],
        "secret1",
        &resp(None, "Approved", ca, cert),
        raw,
        Valid,
    );
    b.signed(
        "Approved with retrySec",
        &["Normal"],
        "secret1",
        &resp(Some(86400), "Approved", ca, cert),
        raw,
        Valid,
    );
    b.signed(
        "renewal answer signed with the empty key",
        &["EmptyKey"],
        "",
        &resp(Some(86400), "Approved", ca, cert),
        raw,
        Valid,
    );
    b.add(
        "Waiting is unsigned",
        &["EmptySignature"],
        "secret1",
        resp(Some(5), "Waiting", ca, "").replacen(MARK, "", 1),
        Invalid,
    );
    let (signed_resp, _) = sign_template(&resp(Some(86400), "Approved", ca, cert), b"secret1");
    b.add(
        "caCert changed after signing",
        &["ModifiedField"],
        "secret1",
        signed_resp.replacen("MIIC", "MIID", 1),
        Invalid,
    );
    b.add(
        "retrySec changed after signing",
        &["ModifiedField"],
        "secret1",
        signed_resp.replacen("86400", "1", 1),
        Invalid,
    );
    b.signed(
        "signed with SHA-256(secret)",
        &["Sha256Key"],
        "secret1",
        &resp(None, "Approved", ca, cert),
        KeyVariant::Sha256OfSecret,
        Invalid,
    );

    b.group(
        "GoReference",
        "Exchanges recorded from the Go reference (tests/fixtures/go-reference), byte for byte.",
    );
    for (c, secret, msg, flags, r) in [
        ("exchange 05: request, secret1", "secret1", CAP05, &["GoReference"][..], Valid),
        ("exchange 05: Approved response", "secret1", CAP05R, &["GoReference"][..], Valid),
        ("exchange 11: request, secret2", "secret2", CAP11, &["GoReference"][..], Valid),
        ("exchange 11: Approved response", "secret2", CAP11R, &["GoReference"][..], Valid),
        ("exchange 61: the Go client's request, gsecret1", "gsecret1", CAP61, &["GoReference"][..], Valid),
        ("exchange 61: Approved response to the Go client", "gsecret1", CAP61R, &["GoReference"][..], Valid),
        ("exchange 41: admin-authorised response, empty key", "", CAP41R, &["GoReference", "EmptyKey"][..], Valid),
        ("exchange 42: renewal request signed with the empty key", "", CAP42, &["GoReference", "EmptyKey"][..], Valid),
        ("exchange 42: renewal response, empty key", "", CAP42R, &["GoReference", "EmptyKey"][..], Valid),
        ("exchange 46: request for device ../x", "secretx", CAP46, &["GoReference"][..], Valid),
        ("exchange 13: request keyed with SHA-256(secret3)", "secret3", CAP13, &["GoReference", "Sha256Key"][..], Invalid),
        ("exchange 15: reordered request with an unknown member, signed over Go's canonical form (the reference's re-serialising verifier accepts it)", "secret3", CAP15, &["GoReference", "ReserializedSignature"][..], Invalid),
        ("exchange 14: request signed without its mac member", "secret3", CAP14, &["GoReference", "OmittedField"][..], Invalid),
    ] {
        b.add(c, flags, secret, msg.to_string(), r);
    }

    b.group("RequestSign", "A sender's exact bytes: serialise compactly in wire order with Go's escaping, sign with signature \"\", fill in the tag.");
    for (c, flags, mac) in [
        ("plain request", &["ExactBytes"][..], ""),
        (
            "<, > and & are escaped as \\u003c \\u003e \\u0026",
            &["ExactBytes", "GoEscaping"][..],
            "<a&b>",
        ),
        (
            "U+2028 and U+2029 are escaped",
            &["ExactBytes", "GoEscaping"][..],
            "x\u{2028}y\u{2029}",
        ),
        (
            "control characters: \\n and \\t short, others \\u00XX (including \\b and \\f)",
            &["ExactBytes", "GoEscaping"][..],
            "\u{1}\u{8}\u{c}\n\t",
        ),
        (
            "non-ASCII stays UTF-8",
            &["ExactBytes", "NonAscii"][..],
            "é日本😀",
        ),
    ] {
        let mut req = ProvisionRequest {
            device_id: "dev-1".into(),
            ip: "192.0.2.7".into(),
            mac: mac.into(),
            public_key_pem: KEY.into(),
            csr_pem: None,
            signature: String::new(),
        };
        let bytes = req.sign("secret1", raw);
        b.push(HmacTest {
            tc_id: 0,
            comment: c.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            rules: Vec::new(),
            secret: "secret1".into(),
            message: String::from_utf8(bytes).unwrap_or_default(),
            signing_input: None,
            request: Some(SignFields::from(&req)),
            result: Valid,
        });
    }
    let captured: ProvisionRequest =
        serde_json::from_str(CAP05).map_err(|e| VectorError(e.to_string()))?;
    let cap = SignFields::from(&captured);
    b.push(HmacTest {
        tc_id: 0,
        comment: "the Go reference's request of exchange 05, reproduced byte for byte".into(),
        flags: vec!["ExactBytes".into(), "GoReference".into()],
        rules: Vec::new(),
        secret: "secret1".into(),
        message: CAP05.to_string(),
        signing_input: None,
        request: Some(cap),
        result: Valid,
    });

    let notes: BTreeMap<String, super::Note> = [
        ("Normal", note("Basic", "An ordinary, correctly signed message.")),
        ("EmptyKey", note("EdgeCase", "HMAC with the empty key, as renewal and admin answers use (PROTOCOL §6).")),
        ("LongSecret", note("EdgeCase", "Secrets of 64 bytes or more: HMAC hashes keys longer than the block size; implementations that truncate or pad wrongly fail.")),
        ("NonAsciiSecret", note("Encoding", "The key is the secret's UTF-8 bytes.")),
        ("Sha256Key", note("KnownDeviation", "Keyed with SHA-256(secret) as the standard's prose says; the normative key is the raw secret (PROTOCOL §6).")),
        ("FieldOrder", note("Canonicalization", "Members in another order: raw blanking verifies them; re-serialising receivers fail.")),
        ("UnknownField", note("Canonicalization", "An unknown member covered by the signature; re-serialising receivers drop it and fail.")),
        ("Whitespace", note("Canonicalization", "Insignificant whitespace covered by the signature.")),
        ("GoEscaping", note("Encoding", "Go's encoder escapes <, >, &, U+2028, U+2029 and writes \\u0008 / \\u000c; a sender must match it byte for byte.")),
        ("RawBytes", note("Canonicalization", "Text sent unescaped and signed as sent; a receiver that re-escapes before verifying fails.")),
        ("NonAscii", note("Encoding", "Non-ASCII text in UTF-8.")),
        ("EscapedText", note("Encoding", "Text written with \\u escapes must be verified as sent, not decoded.")),
        ("SignatureInString", note("Parsing", "The text \"signature\" elsewhere must not be mistaken for the member (string search instead of parsing).")),
        ("NestedSignature", note("Parsing", "Only the top-level signature member is blanked.")),
        ("DuplicateSignature", note("Parsing", "Two top-level signature members: ambiguous, must be refused.")),
        ("MissingSignature", note("Parsing", "No signature member.")),
        ("SignatureNotString", note("Parsing", "The signature member is not a string.")),
        ("EmptySignature", note("Parsing", "An empty signature never verifies.")),
        ("BadBase64", note("Encoding", "The tag is not base64.")),
        ("UrlSafeBase64", note("Encoding", "The tag uses the URL-safe alphabet; only standard base64 is allowed.")),
        ("MissingPadding", note("Encoding", "The tag lacks = padding.")),
        ("TruncatedTag", note("Crypto", "A truncated tag must not verify (comparing only a prefix).")),
        ("LongTag", note("Crypto", "A tag longer than 32 bytes must not verify.")),
        ("HexTag", note("Encoding", "The tag in hex instead of base64.")),
        ("WrongSecret", note("Crypto", "Signed with a different secret.")),
        ("ModifiedField", note("Integrity", "A member changed after signing.")),
        ("ModifiedBytes", note("Integrity", "Bytes outside any value changed after signing.")),
        ("EscapedKey", note("Parsing", "The member name signature written with a \\u escape: it is the signature member once decoded; refusing is safe too.")),
        ("NotObject", note("Parsing", "The top-level value is not an object.")),
        ("TrailingData", note("Parsing", "Bytes after the JSON value.")),
        ("InvalidJson", note("Parsing", "Not valid JSON.")),
        ("DeepNesting", note("ResourceLimit", "Very deep nesting; refusing it is acceptable.")),
        ("CaseVariantKey", note("Parsing", "A member whose name differs only in case; Go's decoder matches names case-insensitively.")),
        ("GoReference", note("Interop", "Bytes recorded from the Go reference implementation.")),
        ("ReserializedSignature", note("Canonicalization", "Signed over Go's re-serialised form, not the bytes sent: raw blanking refuses it.")),
        ("OmittedField", note("Canonicalization", "Signed over a form without the mac member; no receiver accepts it.")),
        ("ExactBytes", note("Encoding", "A sender must produce exactly these bytes.")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for g in &mut b.groups {
        for c in &mut g.tests {
            c.rules = super::rules_for(&g.kind, &c.flags);
        }
    }
    Ok(VectorFile {
        algorithm: "IDProv OOB HMAC".into(),
        schema: "oob_hmac_schema.json".into(),
        generator_version: env!("CARGO_PKG_VERSION").into(),
        protocol_sections: vec!["PROTOCOL §5".into(), "PROTOCOL §6".into()],
        header: vec![
            "signature = base64_std(HMAC-SHA256(UTF-8 bytes of the secret, signing input)).".into(),
            "Verify groups: the signing input is the message as received with the value of the single top-level `signature` member replaced by \"\" (raw blanking).".into(),
            "A valid case must verify; an invalid case must not; an acceptable case may go either way.".into(),
            "RequestSign: serialise the request's fields compactly in the order deviceID, ip, mac, publicKeyPEM, signature with Go's escaping, sign with signature \"\", and produce exactly `message`.".into(),
        ],
        notes,
        number_of_tests: b.ids.count(),
        test_groups: b.groups,
    })
}

/// Checks the crate against the file.
pub(super) fn verify(f: &VectorFile<HmacGroup>) -> super::FileSummary {
    let mut t = Tally::new("oob_hmac.json");
    for g in &f.test_groups {
        for c in &g.tests {
            if g.kind == "RequestSign" {
                let Some(r) = &c.request else {
                    t.mismatch(c.tc_id, "RequestSign case without request".into());
                    continue;
                };
                let mut req = ProvisionRequest {
                    device_id: r.device_id.clone(),
                    ip: r.ip.clone(),
                    mac: r.mac.clone(),
                    public_key_pem: r.public_key_pem.clone(),
                    csr_pem: None,
                    signature: String::new(),
                };
                let got = req.sign(&c.secret, KeyVariant::Raw);
                t.check(
                    c.tc_id,
                    c.result,
                    if got == c.message.as_bytes() {
                        Ok(())
                    } else {
                        Err(format!("produced {}", String::from_utf8_lossy(&got)))
                    },
                );
                continue;
            }
            let got = sign::verify_raw(c.message.as_bytes(), c.secret.as_bytes())
                .map_err(|e| e.to_string());
            if let (Ok(()), Some(si)) = (&got, &c.signing_input) {
                let blanked = sign::blank_signature(c.message.as_bytes()).map(|b| b.signing_input);
                if blanked.as_deref() != Ok(si.as_bytes()) {
                    t.mismatch(c.tc_id, "signing input differs".into());
                }
            }
            t.check(c.tc_id, c.result, got);
        }
    }
    t.s
}
