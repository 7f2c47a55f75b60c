//! Building provisioning requests: keys, CSRs, forms and signatures.

use super::*;

impl Case<'_> {
    /// Builds a provisioning request. Returns the body and, when the key is
    /// ours, the key pair.
    pub(super) fn build_request(
        &mut self,
        st: &Step,
        device: &str,
    ) -> Result<(Vec<u8>, Option<rcgen::KeyPair>), StepError> {
        let setup = |e: rcgen::Error| StepError::Fail(format!("setup: {e}"));
        let (key_pem, kp) = match st.key.as_deref().unwrap_or("p256") {
            "p256" => {
                let k = rcgen::KeyPair::generate().map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            "ed25519" => {
                let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            "p384" => {
                let k =
                    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            "rsa2048" => (RSA2048_PUB.to_string(), None),
            "rsa1024" => (RSA1024_PUB.to_string(), None),
            "garbage" => (
                "-----BEGIN PUBLIC KEY-----\nAAECAwQFBgcICQ==\n-----END PUBLIC KEY-----\n".into(),
                None,
            ),
            "not-pem" => ("this is not a key".into(), None),
            other => return fail(format!("unknown key kind `{other}`")),
        };
        let key_pem = match st.key_form.as_deref().unwrap_or("lf") {
            "lf" => key_pem,
            "no-final-newline" => key_pem.trim_end_matches('\n').to_string(),
            "crlf" => key_pem.replace('\n', "\r\n"),
            other => return fail(format!("unknown key_form `{other}`")),
        };
        if let Some(body) = &st.body {
            let quoted = serde_json::to_string(&key_pem).unwrap_or_default();
            let escaped = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or("");
            let b = body.replace("{device}", device).replace("{key}", escaped);
            return Ok((b.into_bytes(), kp));
        }
        let csr = match st.csr.as_deref().unwrap_or("none") {
            "none" => None,
            mode => {
                let signer = match mode {
                    "key-mismatch" => rcgen::KeyPair::generate().map_err(setup)?,
                    _ => match &kp {
                        Some(k) => rcgen::KeyPair::from_pem(&k.serialize_pem()).map_err(setup)?,
                        None => return fail("a CSR needs a key the suite holds"),
                    },
                };
                let mut p = rcgen::CertificateParams::default();
                p.distinguished_name = rcgen::DistinguishedName::new();
                p.distinguished_name
                    .push(rcgen::DnType::CommonName, device.to_string());
                let csr = p.serialize_request(&signer).map_err(setup)?;
                let mut der = csr.der().to_vec();
                if mode == "bad-signature" {
                    if let Some(last) = der.last_mut() {
                        *last ^= 0x01;
                    }
                } else if mode != "valid" && mode != "key-mismatch" {
                    return fail(format!("unknown csr mode `{mode}`"));
                }
                Some(crate::pki::pem_encode("CERTIFICATE REQUEST", &der))
            }
        };
        let mut fields: Vec<(&str, Value)> = vec![("deviceID", Value::String(device.into()))];
        match st.ip.as_deref().unwrap_or("default") {
            "default" => fields.push(("ip", Value::String("127.0.0.1".into()))),
            "missing" => {}
            "garbage" => fields.push(("ip", Value::String("not-an-ip".into()))),
            other => return fail(format!("unknown ip mode `{other}`")),
        }
        fields.push(("mac", Value::String(String::new())));
        fields.push(("publicKeyPEM", Value::String(key_pem)));
        if let Some(c) = csr {
            fields.push(("csrPEM", Value::String(c)));
        }
        fields.push(("signature", Value::String(String::new())));
        let key: Option<Vec<u8>> = match st.secret.as_deref() {
            Some("none") => None,
            sym => {
                let s = match &st.secret_literal {
                    Some(l) => l.clone(),
                    None => self.secret(sym.unwrap_or("s")),
                };
                let variant = match st.variant.as_deref().unwrap_or("raw") {
                    "raw" => KeyVariant::Raw,
                    "sha256" => KeyVariant::Sha256OfSecret,
                    other => return fail(format!("unknown variant `{other}`")),
                };
                Some(variant.key(&s))
            }
        };
        let canonical = encode_object(&fields);
        let form = st.form.as_deref().unwrap_or("go");
        let sent_fields: Vec<(&str, Value)> = match form {
            "go" => fields.clone(),
            "reordered-raw" | "reordered-canonical" => {
                let mut f: Vec<(&str, Value)> = fields.iter().rev().cloned().collect();
                f.insert(2, ("x-extra", Value::from(123)));
                f
            }
            other => return fail(format!("unknown form `{other}`")),
        };
        let Some(key) = key else {
            return Ok((encode_object(&sent_fields), kp));
        };
        let input = if form == "reordered-raw" {
            encode_object(&sent_fields)
        } else {
            canonical
        };
        let tag = sign::tag_b64(&key, &input);
        let signed: Vec<(&str, Value)> = sent_fields
            .into_iter()
            .map(|(k, v)| {
                if k == "signature" {
                    (k, Value::String(tag.clone()))
                } else {
                    (k, v)
                }
            })
            .collect();
        Ok((encode_object(&signed), kp))
    }
}

pub(super) fn encode_object(fields: &[(&str, Value)]) -> Vec<u8> {
    crate::core::json::encode_members(fields)
}
