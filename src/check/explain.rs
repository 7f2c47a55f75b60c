//! `idprov check explain CASE-ID`: everything a person needs to understand a
//! case and a failure of it — the rules it checks (their text from
//! docs/PROTOCOL.md), why they matter, its steps, how to fix an
//! implementation that fails it, and how to reproduce it by hand with curl
//! and openssl.

use super::scenario::{name_of, Action, EndpointSpec, Role, Scenario, Step};
use super::SetupError;
use std::fmt::Write as _;

/// The explanation of case `id`.
pub fn explain(id: &str) -> Result<String, SetupError> {
    let all = super::scenario::catalogue().map_err(|e| SetupError(e.to_string()))?;
    let s = all
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| SetupError(format!("no case `{id}` (see `idprov check --list`)")))?;
    Ok(render(s))
}

/// Renders one case's explanation.
pub fn render(s: &Scenario) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{} — {}", s.id, s.title);
    let _ = writeln!(
        o,
        "{} · {} · checks a {}",
        s.level.as_str(),
        s.section,
        match s.role {
            Role::Server => "server",
            Role::Client => "device (client)",
        }
    );
    let _ = writeln!(o, "\nRules (docs/PROTOCOL.md):");
    for id in &s.rules {
        match crate::spec::rule(id) {
            Some(r) => {
                let _ = writeln!(
                    o,
                    "  {} — {} {}: {}",
                    r.id,
                    r.level.as_str(),
                    r.section,
                    r.text
                );
            }
            None => {
                let _ = writeln!(o, "  {id} — (not in this build's profile)");
            }
        }
    }
    let _ = writeln!(o, "\nWhy it matters:\n  {}", s.rationale);
    let _ = writeln!(o, "\nHow to fix a failure:\n  {}", s.fix);
    if !s.requires.is_empty() {
        let _ = writeln!(
            o,
            "\nRuns only when the target has: {} (else skip)",
            s.requires.join(", ")
        );
    }
    let features = s.features();
    if !features.is_empty() {
        let _ = writeln!(
            o,
            "\nIDPROV_FEATURE for the device run: {}",
            features.join(", ")
        );
    }
    if !s.description.is_empty() {
        let _ = writeln!(o, "\n{}", s.description);
    }
    let _ = writeln!(o, "\nSteps:");
    for (i, st) in s.steps.iter().enumerate() {
        let _ = writeln!(o, "  {}. {}", i + 1, step_text(st));
    }
    let _ = writeln!(o, "\nReproduce by hand:");
    match s.role {
        Role::Server => o.push_str(&server_repro(s)),
        Role::Client => o.push_str(&client_repro(s)),
    }
    o
}

fn action_name(st: &Step) -> String {
    st.action.as_ref().map(name_of).unwrap_or_default()
}

/// One step in words: the action, its parameters, what must hold.
fn step_text(st: &Step) -> String {
    let mut t = action_name(st);
    let mut params = Vec::new();
    let mut p = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            params.push(format!("{k} {v}"));
        }
    };
    p("as", st.as_.as_ref().map(ToString::to_string));
    p("device", st.device.clone());
    p(
        "device id",
        st.device_literal.as_ref().map(|d| format!("{d:?}")),
    );
    p("secret", st.secret.clone());
    p(
        "secret",
        st.secret_literal.as_ref().map(|d| format!("{d:?}")),
    );
    p("validUntil", st.valid_until.map(|v| v.to_string()));
    p("key", st.key.as_ref().map(name_of));
    p("HMAC key", st.variant.as_ref().map(name_of));
    p("ip", st.ip.as_ref().map(name_of));
    p("form", st.form.as_ref().map(name_of));
    p("csr", st.csr.as_ref().map(name_of));
    p("replay", st.replay.map(|_| "the last request".into()));
    p("method", st.method.clone());
    p("endpoint", st.endpoint.as_ref().map(name_of));
    p("path", st.path.clone());
    p("body", st.body.clone());
    p("body of", st.body_size.map(|n| format!("{n} bytes")));
    p("count", st.count.map(|n| n.to_string()));
    p("rounds", st.rounds.map(|n| n.to_string()));
    p("ms", st.ms.map(|n| n.to_string()));
    p("observe", st.what.as_ref().map(name_of));
    p("url", st.url.as_ref().map(name_of));
    p("pre-provisioned CA", st.ca.as_ref().map(name_of));
    p("IDPROV_FEATURE", st.feature.clone());
    if let Some(b) = &st.bugs {
        if let Ok(v) = serde_json::to_value(b) {
            let on: Vec<String> = v
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| !(v.is_null() || *v == false || *v == 0))
                .map(|(k, v)| match v {
                    serde_json::Value::Bool(true) => k.clone(),
                    other => format!("{k}={}", other.to_string().trim_matches('"')),
                })
                .collect();
            p(
                "server misbehaviour",
                Some(if on.is_empty() {
                    "none (honest)".into()
                } else {
                    on.join(", ")
                }),
            );
        }
    }
    if !params.is_empty() {
        let _ = write!(t, " ({})", params.join("; "));
    }
    let expect = serde_json::to_value(&st.expect)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let holds: Vec<String> = expect
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{k} = {}", v.to_string().trim_matches('"')))
        .collect();
    if !holds.is_empty() {
        let _ = write!(t, " → expect {}", holds.join(", "));
    }
    t
}

const SERVER_SETUP: &str = r#"  # Your server, its CA and an admin credential:
  DIR=https://HOST:43776/idprov/directory
  CA=ca.pem ADMIN_CERT=admin-cert.pem ADMIN_KEY=admin-key.pem
  curl -sS --cacert "$CA" "$DIR"        # note the endpoints; below they are
  OOB=https://HOST:43776/idprov/oobsecret PROVREQ=https://HOST:43776/idprov/provreq
  STATUS=https://HOST:43776/idprov/status
  DEV=dev-$RANDOM SECRET=s3cret-$RANDOM
"#;

const POST_OOB: &str = r#"  curl -sS -i --cacert "$CA" --cert "$ADMIN_CERT" --key "$ADMIN_KEY" \
    -H 'Content-Type: application/json' \
    -d '{"deviceID":"'"$DEV"'","oobSecret":"'"$SECRET"'","validUntil":""}' "$OOB"
"#;

const PROVISION: &str = r#"  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev.key
  PUB=$(openssl pkey -in dev.key -pubout | awk '{printf "%s\\n", $0}')
  BODY='{"deviceID":"'"$DEV"'","ip":"127.0.0.1","mac":"","publicKeyPEM":"'"$PUB"'","signature":""}'
  SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64 | tr -d '\n')
  SIGNED=$(printf '%s' "$BODY" | sed "s|\"signature\":\"\"}|\"signature\":\"$SIG\"}|")
  curl -sS -i --cacert "$CA" -H 'Content-Type: application/json' -d "$SIGNED" "$PROVREQ"
  #   the answer's signature: blank it the same way and HMAC with $SECRET
"#;

fn server_repro(s: &Scenario) -> String {
    let mut o = String::from(SERVER_SETUP);
    for (i, st) in s.steps.iter().enumerate() {
        let _ = writeln!(o, "  # step {}: {}", i + 1, action_name(st));
        match st.action {
            Some(Action::Directory) => o.push_str("  curl -sS -i --cacert \"$CA\" \"$DIR\"\n"),
            Some(Action::PostOob) => o.push_str(&cred(POST_OOB, st)),
            Some(Action::Provision) => o.push_str(&cred(PROVISION, st)),
            Some(Action::Sanity) => {
                o.push_str(POST_OOB);
                o.push_str(PROVISION);
            }
            Some(Action::Status) => o.push_str(&cred(
                "  curl -sS -i --cacert \"$CA\" --cert \"$ADMIN_CERT\" --key \"$ADMIN_KEY\" \"$STATUS/$DEV\"\n",
                st,
            )),
            Some(Action::Raw) => {
                let _ = writeln!(
                    o,
                    "  curl -sS -i --cacert \"$CA\" -X {} {}\"{}\"",
                    st.method.as_deref().unwrap_or("GET"),
                    match (&st.body, st.body_size) {
                        (_, Some(n)) => format!("--data-binary @<(head -c {n} /dev/zero | tr '\\0' a) "),
                        (Some(b), None) => format!("-d '{b}' "),
                        _ => String::new(),
                    },
                    match st.endpoint {
                        Some(EndpointSpec::Directory) => "$DIR".to_string(),
                        Some(EndpointSpec::Oob) => "$OOB".to_string(),
                        Some(EndpointSpec::Provreq) => "$PROVREQ".to_string(),
                        Some(EndpointSpec::Status) => "$STATUS/$DEV".to_string(),
                        None => format!("https://HOST:43776{}", st.path.as_deref().unwrap_or("/")),
                    }
                );
            }
            Some(Action::Guess) => {
                let _ = writeln!(
                    o,
                    "  # repeat the provisioning request {} times with SECRET=wrong-$i",
                    st.count.unwrap_or(5)
                );
            }
            Some(Action::Burst | Action::Concurrent) => {
                let _ = writeln!(
                    o,
                    "  # run {} of the post/provision pairs above at once{}, e.g. with xargs -P",
                    st.count.unwrap_or(64),
                    st.rounds
                        .map(|r| format!(", {r} rounds, posting each round while the previous one provisions"))
                        .unwrap_or_default()
                );
            }
            Some(Action::Together) => {
                let members = st.group.as_deref().unwrap_or(&[]);
                let _ = writeln!(
                    o,
                    "  # the {} requests below at once (each in the background, then `wait`)",
                    members.len()
                );
                for m in members {
                    let _ = writeln!(o, "  # {}", step_text(m));
                    match m.action {
                        Some(Action::PostOob) => o.push_str(&cred(POST_OOB, m)),
                        Some(Action::Provision) => o.push_str(&cred(PROVISION, m)),
                        _ => o.push_str(&cred(
                            "  curl -sS -i --cacert \"$CA\" --cert \"$ADMIN_CERT\" --key \"$ADMIN_KEY\" \"$STATUS/$DEV\"\n",
                            m,
                        )),
                    }
                }
                o.push_str("  wait\n");
                if let Some(t) = &st.outcomes {
                    let shown: Vec<String> = t
                        .iter()
                        .map(|t| t.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
                        .collect();
                    let _ = writeln!(o, "  # allowed answers (some order explains them): {}", shown.join(" | "));
                }
            }
            Some(Action::Sweep) => {
                let _ = writeln!(
                    o,
                    "  # repeat the post/provision pair above for every {} docs/SUITE.md lists for the sweep",
                    match st.field {
                        Some(crate::check::scenario::SweepField::SecretLength) => "secret length and value",
                        Some(crate::check::scenario::SweepField::DeviceId) => "device-ID length and value (as admin)",
                        Some(crate::check::scenario::SweepField::Signature) => "wrong signature near the right one (then the right one)",
                        Some(crate::check::scenario::SweepField::PublicKey) => "RSA key size (publicKeyPEM)",
                        _ => "validUntil value",
                    }
                );
            }
            Some(Action::Relate) => {
                let _ = writeln!(
                    o,
                    "  # {}",
                    match st.relation {
                        Some(crate::check::scenario::Relation::ExtraMembers) =>
                            "provision two devices as admin, the second request with extra members (\"ou\":\"admin\", \"days\":400, \"isCA\":true, …); compare the certificates: openssl x509 -noout -text",
                        _ => "provision with the secret, renew with the certificate (--cert dev-cert.pem --key dev.key); compare the certificates: openssl x509 -noout -text",
                    }
                );
            }
            Some(Action::Wait) => {
                let _ = writeln!(o, "  sleep {}", st.ms.unwrap_or(0) as f64 / 1000.0);
            }
            Some(Action::Discover) => {
                o.push_str("  avahi-browse -rt _idprov._tcp   # SRV port, addresses, TXT path=…\n");
            }
            Some(Action::Observe) => {
                o.push_str("  # an observation: compare the answers of the variants above\n");
            }
            _ => {}
        }
    }
    o
}

/// Adjusts the credential flags of a command to the step's `as`.
fn cred(cmd: &str, st: &Step) -> String {
    let admin = "--cert \"$ADMIN_CERT\" --key \"$ADMIN_KEY\"";
    let who = st.as_.as_ref().map_or_else(
        || match st.action {
            Some(Action::Provision) => "nobody".to_string(),
            _ => "admin".to_string(),
        },
        ToString::to_string,
    );
    let with = match who.split_once(':').map_or(who.as_str(), |(k, _)| k) {
        "nobody" => String::new(),
        "admin" => admin.to_string(),
        "plugin" => "--cert plugin-cert.pem --key plugin-key.pem".into(),
        "device" => "--cert dev-cert.pem --key dev.key".into(),
        other => format!("--cert {other}-cert.pem --key {other}-key.pem"),
    };
    if cmd.contains(admin) {
        cmd.replace(admin, &with)
    } else if !with.is_empty() {
        cmd.replace(
            "--cacert \"$CA\" -H",
            &format!("--cacert \"$CA\" {with} -H"),
        )
    } else {
        cmd.to_string()
    }
}

fn client_repro(s: &Scenario) -> String {
    format!(
        "  # The suite plays the server (its misbehaviour is in the steps above) and\n  \
         # runs your device through the shim; every request it sends is recorded:\n  \
         idprov check client --cmd 'my-device --url {{url}} --id {{device_id}} --secret {{secret}} --out {{dir}} --ca {{ca}}' \\\n    \
         --cases '{}' --report-dir reports\n  \
         # reports/report.html shows each request the device made and its stderr.\n",
        s.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_explains_itself() {
        for s in super::super::scenario::catalogue().unwrap() {
            let e = explain(&s.id).unwrap();
            assert!(e.contains(&s.rationale) && e.contains(&s.fix), "{}", s.id);
            for r in &s.rules {
                assert!(e.contains(r.as_str()), "{}: {r}", s.id);
            }
            assert!(e.contains("Reproduce by hand"), "{}", s.id);
        }
        assert!(explain("server.nope.nothing").is_err());
        let g = explain("server.provision.guess-limit").unwrap();
        assert!(g.contains("openssl dgst -sha256 -hmac"), "{g}");
        assert!(g.contains("after 5"), "{g}");
    }
}
