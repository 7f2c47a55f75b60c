//! Building provisioning requests: keys, CSRs, forms and signatures.

use super::*;
use crate::check::scenario::{CsrSpec, HmacKey, IpSpec, KeyForm, KeySpec, RequestForm};

impl Case<'_> {
    /// Builds a provisioning request. Returns the body and, when the key is
    /// ours, the key pair.
    pub(super) fn build_request(
        &mut self,
        st: &Step,
        device: &str,
    ) -> Result<(Vec<u8>, Option<rcgen::KeyPair>), StepError> {
        let setup = |e: rcgen::Error| StepError::Fail(format!("setup: {e}"));
        let (key_pem, kp) = match st.key.unwrap_or(KeySpec::P256) {
            _ if st.key_pem_literal.is_some() => {
                (st.key_pem_literal.clone().unwrap_or_default(), None)
            }
            KeySpec::P256 => {
                let k = rcgen::KeyPair::generate().map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            KeySpec::Ed25519 => {
                let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            KeySpec::P384 => {
                let k =
                    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            KeySpec::Previous => {
                let sym = st.device.clone().unwrap_or_else(|| "d".into());
                let held = self
                    .saved
                    .get(&sym)
                    .and_then(|s| s.identity.as_ref())
                    .map(|i| i.key_pem.clone());
                let Some(pem) = held else {
                    return fail(format!(
                        "device {sym} holds no key from an earlier certificate"
                    ));
                };
                let k = rcgen::KeyPair::from_pem(&pem).map_err(setup)?;
                (k.public_key_pem(), Some(k))
            }
            KeySpec::Rsa2048 => (RSA2048_PUB.to_string(), None),
            KeySpec::Rsa1024 => (RSA1024_PUB.to_string(), None),
            KeySpec::Garbage => (
                "-----BEGIN PUBLIC KEY-----\nAAECAwQFBgcICQ==\n-----END PUBLIC KEY-----\n".into(),
                None,
            ),
            KeySpec::NotPem => ("this is not a key".into(), None),
        };
        let key_pem = match st.key_form.unwrap_or(KeyForm::Lf) {
            KeyForm::Lf => key_pem,
            KeyForm::NoFinalNewline => key_pem.trim_end_matches('\n').to_string(),
            KeyForm::Crlf => key_pem.replace('\n', "\r\n"),
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
        let csr = match st.csr.unwrap_or(CsrSpec::None) {
            _ if st.csr_literal.is_some() => st.csr_literal.clone(),
            CsrSpec::None => None,
            mode => {
                let signer = match mode {
                    CsrSpec::KeyMismatch => rcgen::KeyPair::generate().map_err(setup)?,
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
                if mode == CsrSpec::BadSignature {
                    if let Some(last) = der.last_mut() {
                        *last ^= 0x01;
                    }
                }
                Some(crate::pki::pem_encode("CERTIFICATE REQUEST", &der))
            }
        };
        let mut fields: Vec<(&str, Value)> = vec![("deviceID", Value::String(device.into()))];
        match st.ip.unwrap_or(IpSpec::Default) {
            IpSpec::Default => fields.push(("ip", Value::String("127.0.0.1".into()))),
            IpSpec::Missing => {}
            IpSpec::Garbage => fields.push(("ip", Value::String("not-an-ip".into()))),
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
                let variant = match st.variant.unwrap_or(HmacKey::Raw) {
                    HmacKey::Raw => KeyVariant::Raw,
                    HmacKey::Sha256 => KeyVariant::Sha256OfSecret,
                };
                Some(variant.key(&s))
            }
        };
        let canonical = encode_object(&fields);
        let form = st.form.unwrap_or(RequestForm::Go);
        let sent_fields: Vec<(&str, Value)> = match form {
            RequestForm::Go => fields.clone(),
            RequestForm::ReorderedRaw | RequestForm::ReorderedCanonical => {
                let mut f: Vec<(&str, Value)> = fields.iter().rev().cloned().collect();
                f.insert(2, ("x-extra", Value::from(123)));
                f
            }
        };
        let Some(key) = key else {
            return Ok((encode_object(&sent_fields), kp));
        };
        let input = if form == RequestForm::ReorderedRaw {
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
