//! Observations (verdict info): key variant, canonical form, directory form.

use super::*;
use crate::check::scenario::{name_of, HmacKey, RequestForm};

impl Case<'_> {
    pub(super) async fn do_observe(&mut self, st: &Step) -> StepResult {
        match st.what.as_ref().map(name_of).unwrap_or_default().as_str() {
            "key-variant" => {
                let mut found = Vec::new();
                for (variant, name) in [
                    (HmacKey::Raw, "the raw secret"),
                    (HmacKey::Sha256, "SHA-256 of the secret"),
                ] {
                    let sym = format!("kv-{}", name_of(&variant));
                    let r = self
                        .with_fresh_secret(
                            &sym,
                            Step {
                                variant: Some(variant),
                                ..Step::default()
                            },
                        )
                        .await?;
                    let approved = resp_json(&r).is_some_and(|v| v["status"] == "Approved");
                    if approved {
                        let secret = self.secret(&sym);
                        let resp = match sign::detect_variant(&r.body, &secret) {
                            Ok(KeyVariant::Raw) => "raw key",
                            Ok(KeyVariant::Sha256OfSecret) => "SHA-256 key",
                            Err(_) => "neither key (unsigned or other)",
                        };
                        found.push(format!(
                            "accepts requests keyed with {name}; signs responses with the {resp}"
                        ));
                    }
                }
                Ok(Some(if found.is_empty() {
                    "accepted neither key variant".into()
                } else {
                    found.join("; ")
                }))
            }
            "canonical-form" => {
                let mut methods = Vec::new();
                for (form, name) in [
                    (
                        RequestForm::ReorderedRaw,
                        "raw blanking (signature over the bytes sent)",
                    ),
                    (
                        RequestForm::ReorderedCanonical,
                        "re-serialisation in Go's field order (the reference's method)",
                    ),
                ] {
                    let sym = format!("cf-{}", name_of(&form));
                    let r = self
                        .with_fresh_secret(
                            &sym,
                            Step {
                                form: Some(form),
                                ..Step::default()
                            },
                        )
                        .await?;
                    if resp_json(&r).is_some_and(|v| v["status"] == "Approved") {
                        methods.push(name);
                    }
                }
                Ok(Some(if methods.is_empty() {
                    "verifies neither a reordered request signed over its bytes nor one signed over Go's canonical form".into()
                } else {
                    format!("verifies by {}", methods.join(" and by "))
                }))
            }
            "directory-form" => {
                let url = self.ctx.target.url.clone();
                let r = self
                    .call_with(Method::GET, &url, None, "nobody", true)
                    .await
                    .map_err(StepError::Fail)?;
                let d =
                    parse_directory(&r.body, &url).map_err(|e| StepError::Fail(e.to_string()))?;
                Ok(Some(format!(
                    "endpoints are {}; caCert is {}; version {:?}; extensions {:?}; Content-Type {}",
                    if d.endpoints_are_urls { "absolute URLs" } else { "paths" },
                    match d.ca_encoding {
                        crate::core::directory::CaEncoding::Pem => "PEM",
                        crate::core::directory::CaEncoding::Base64Pem => "base64 of PEM",
                        crate::core::directory::CaEncoding::Absent => "absent",
                    },
                    d.version,
                    d.extensions,
                    r.content_type().unwrap_or("(none)")
                )))
            }
            other => fail(format!("unknown observation `{other}`")),
        }
    }
}
