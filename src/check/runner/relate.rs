//! Metamorphic relations (`relate`): properties of two runs rather than of
//! one answer. Each relation makes a pair of requests that differ only in
//! what the profile says cannot matter, and the two answers must agree.

use super::sweep::in_terms;
use super::*;
use crate::check::profile::{shape_of, Shape};
use crate::check::scenario::{Credential, Expect, Relation};

/// Members a server might wrongly take into a certificate, sent beside the
/// profile's own (they are not in the profile, so nothing may come of
/// them).
const DECORATED: &str = r#"{"deviceID":"{device}","ou":"admin","organizationalUnit":"admin","commonName":"admin","subject":"CN=admin,OU=admin","days":400,"validityDays":400,"notAfter":"2099-01-01T00:00:00Z","isCA":true,"basicConstraints":"CA:TRUE","keyUsage":["keyCertSign"],"extKeyUsage":["serverAuth"],"serialNumber":"01","san":["DNS:example.com"],"ip":"127.0.0.1","mac":"","publicKeyPEM":"{key}","signature":""}"#;

/// Requests with seeded random members a run of `extra-members` sends
/// after the fixed one.
const RANDOM_DECORATIONS: usize = 8;

/// Names a request's extra members are drawn from: what a server might
/// read a certificate's content from, and names no profile defines. None
/// equals a profile member's name in any case.
const MEMBER_NAMES: &[&str] = &[
    "ou",
    "organizationalUnit",
    "role",
    "roles",
    "cn",
    "commonName",
    "subject",
    "days",
    "validityDays",
    "validFor",
    "notBefore",
    "notAfter",
    "isCA",
    "ca",
    "basicConstraints",
    "pathLen",
    "keyUsage",
    "extKeyUsage",
    "eku",
    "san",
    "subjectAltName",
    "dns",
    "email",
    "serialNumber",
    "serial",
    "extensions",
    "template",
    "profile",
    "issuer",
    "signatureAlgorithm",
    "x-vendor",
    "",
    "\u{1}",
    "é",
];

/// A provisioning request template (`{device}`, `{key}`) with one to six
/// random members outside the profile, before and after the profile's.
fn random_decorated(rng: &mut ChaCha20Rng) -> String {
    let mut members: Vec<String> = vec![
        r#""deviceID":"{device}""#.into(),
        r#""ip":"127.0.0.1""#.into(),
        r#""mac":"""#.into(),
        r#""publicKeyPEM":"{key}""#.into(),
    ];
    for _ in 0..rng.gen_range(1..=6) {
        let name = MEMBER_NAMES[rng.gen_range(0..MEMBER_NAMES.len())];
        let value = random_value(rng, 0);
        let at = rng.gen_range(1..=members.len());
        // No name or text holds `{device}` or `{key}`, the template's
        // placeholders.
        members.insert(at, format!("{}:{value}", Value::from(name)));
    }
    members.push(r#""signature":"""#.into());
    format!("{{{}}}", members.join(","))
}

/// A random JSON value, nested at most three deep.
fn random_value(rng: &mut ChaCha20Rng, depth: u32) -> Value {
    const TEXT: &[&str] = &[
        "admin",
        "plugin",
        "iotdevice",
        "CA:TRUE",
        "keyCertSign",
        "serverAuth",
        "99999",
        "2099-01-01T00:00:00Z",
        "\"",
        "\\",
        "\n",
        "\u{0}",
        "é",
        "🙂",
        " ",
        "*",
        "DNS:example.com",
    ];
    match rng.gen_range(0..if depth >= 3 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.gen()),
        2 => Value::from(
            [
                0i64,
                -1,
                1,
                365,
                36500,
                i64::MAX,
                i64::MIN,
                9_007_199_254_740_993,
            ][rng.gen_range(0..8)],
        ),
        3 => serde_json::Number::from_f64([0.5, -0.0, 1e308, 3.25][rng.gen_range(0..4)])
            .map_or(Value::Null, Value::Number),
        4 | 5 => Value::String(
            (0..rng.gen_range(0..4))
                .map(|_| TEXT[rng.gen_range(0..TEXT.len())])
                .collect(),
        ),
        6 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.gen_range(0..4))
                .map(|_| {
                    (
                        MEMBER_NAMES[rng.gen_range(0..MEMBER_NAMES.len())].to_string(),
                        random_value(rng, depth + 1),
                    )
                })
                .collect(),
        ),
    }
}

impl Case<'_> {
    pub(super) async fn do_relate(&mut self, st: &Step) -> StepResult {
        match st.relation {
            Some(Relation::ExtraMembers) => self.relate_extra_members().await,
            Some(Relation::Renewal) => self.relate_renewal().await,
            Some(Relation::AnyAnswer) => fail("`any-answer` is a relation of client cases"),
            None => fail("a relation step needs a `relation`"),
        }
    }

    /// The shape of the certificate last issued to `sym`'s device.
    fn last_shape(&mut self, sym: &str) -> Result<Shape, StepError> {
        let device = self.device(sym);
        let pem = self
            .last_cert
            .get(&device)
            .and_then(|c| c.last())
            .ok_or_else(|| StepError::Fail("no certificate was issued".into()))?;
        let der = cert_der_from_pem(pem).map_err(|e| StepError::Fail(e.to_string()))?;
        shape_of(&der).map_err(StepError::Fail)
    }

    /// Two admin provisionings, one plain and one carrying members that
    /// name another role, CN, lifetime, CA flag, key usages, serial and
    /// names: both certificates have one profile. A server that refuses
    /// members it does not know (400) takes nothing from them either; the
    /// case then says it could not judge the relation.
    async fn relate_extra_members(&mut self) -> StepResult {
        let admin = Some(Credential::Admin);
        let plain = Step {
            action: Some(Action::Provision),
            device: Some("plain".into()),
            secret: Some("none".into()),
            as_: admin.clone(),
            expect: approved(),
            ..Step::default()
        };
        self.do_provision(&plain).await?;
        let want = self.last_shape("plain")?;
        let decorated = Step {
            action: Some(Action::Provision),
            device: Some("decorated".into()),
            as_: admin,
            body: Some(DECORATED.into()),
            expect: Expect {
                http: Some(vec![200, 400]),
                ..Expect::default()
            },
            ..Step::default()
        };
        self.do_provision(&decorated).await?;
        if matches!(self.last_response, Some((400, _))) {
            return Ok(Some(
                "the request with members outside the profile was refused (400): nothing was taken from them, and the relation was not judged".into(),
            ));
        }
        let got = self.last_shape("decorated").map_err(|e| match e {
            StepError::Fail(_) => StepError::Fail(
                "the request with members outside the profile got no certificate and no 400".into(),
            ),
            other => other,
        })?;
        let diff = want.differences(&got);
        if !diff.is_empty() {
            return fail(format!(
                "a request carrying members outside the profile (ou, commonName, days, isCA, extKeyUsage, …) got a certificate of another profile than a plain one: {}",
                diff.join("; ")
            ));
        }
        // The relation drives generation: seeded random members, names and
        // values, each request judged as the fixed one.
        let mut refused = 0;
        for k in 0..RANDOM_DECORATIONS {
            let template = random_decorated(&mut self.rng);
            let sym = format!("random-{k}");
            let step = Step {
                action: Some(Action::Provision),
                device: Some(sym.clone()),
                as_: Some(Credential::Admin),
                body: Some(template.clone()),
                expect: Expect {
                    http: Some(vec![200, 400]),
                    ..Expect::default()
                },
                ..Step::default()
            };
            let shown = truncate(&template);
            self.do_provision(&step)
                .await
                .map_err(|e| in_terms(e, &format!("the request {shown}")))?;
            if matches!(self.last_response, Some((400, _))) {
                refused += 1;
                continue;
            }
            let got = self.last_shape(&sym)?;
            let diff = want.differences(&got);
            if !diff.is_empty() {
                return fail(format!(
                    "the request {shown} got a certificate of another profile than a plain one: {}",
                    diff.join("; ")
                ));
            }
        }
        self.evidence.push(Exchange::note(
            self.step_no,
            format!(
                "{RANDOM_DECORATIONS} requests with seeded random members outside the profile: {} issued with the plain profile, {refused} refused with 400",
                RANDOM_DECORATIONS - refused
            ),
        ));
        Ok(None)
    }

    /// A first issuance by secret and a renewal with that certificate:
    /// both certificates have one profile.
    async fn relate_renewal(&mut self) -> StepResult {
        let post = Step {
            action: Some(Action::PostOob),
            device: Some("r".into()),
            secret: Some("s".into()),
            expect: Expect {
                http: Some(vec![200]),
                ..Expect::default()
            },
            ..Step::default()
        };
        self.do_post_oob(&post).await?;
        let first = Step {
            action: Some(Action::Provision),
            device: Some("r".into()),
            secret: Some("s".into()),
            expect: approved(),
            ..Step::default()
        };
        self.do_provision(&first).await?;
        let want = self.last_shape("r")?;
        let renewal = Step {
            action: Some(Action::Provision),
            device: Some("r".into()),
            secret: Some("none".into()),
            as_: Some(Credential::Device("r".into())),
            expect: approved(),
            ..Step::default()
        };
        self.do_provision(&renewal).await?;
        let got = self.last_shape("r")?;
        let diff = want.differences(&got);
        if !diff.is_empty() {
            return fail(format!(
                "the renewed certificate has another profile than the first one: {}",
                diff.join("; ")
            ));
        }
        Ok(None)
    }
}
