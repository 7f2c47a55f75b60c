//! The closed list of device features a client case may name in
//! `IDPROV_FEATURE` (the shim contract). An optional feature may be answered
//! with exit 89 ("not implemented": the case is skipped); a core feature is
//! behaviour every device MUST have, so exit 89 there is a failure.

/// One feature of the shim contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// The value of `IDPROV_FEATURE`.
    pub name: &'static str,
    /// What the feature covers.
    pub covers: &'static str,
    /// Whether a device may lack it (exit 89 → skip).
    pub optional: bool,
    /// The profile section that makes it optional or core.
    pub section: &'static str,
}

/// Every feature, in the order the contract lists them.
pub const FEATURES: &[Feature] = &[
    Feature {
        name: "discovery",
        covers: "finding the server by DNS-SD when {url} is empty",
        optional: true,
        section: "PROTOCOL §2: a device may be given the directory URL",
    },
    Feature {
        name: "csr",
        covers: "sending a CSR (csrPEM) to a server that advertises the csr extension",
        optional: true,
        section: "PROTOCOL §8, an extension",
    },
    Feature {
        name: "preprovisioned-ca",
        covers: "running with a CA given in advance ({ca}) instead of the leap of faith",
        optional: true,
        section: "PROTOCOL §3",
    },
    Feature {
        name: "waiting",
        covers: "retrying after Waiting, spaced by retrySec and bounded",
        optional: false,
        section: "PROTOCOL §9 rule 4",
    },
    Feature {
        name: "pinning",
        covers: "leap of faith on the directory, then pinning its caCert for every later request",
        optional: false,
        section: "PROTOCOL §3, §9 rule 2",
    },
    Feature {
        name: "renewal",
        covers: "renewing a held certificate set over mutual TLS, without the secret",
        optional: false,
        section: "PROTOCOL §9 rule 6",
    },
    Feature {
        name: "verification",
        covers: "checking the answer: signature, certificate chain, CN, key, validity",
        optional: false,
        section: "PROTOCOL §9 rule 3",
    },
];

/// The feature called `name`, if it is on the list.
pub fn feature(name: &str) -> Option<&'static Feature> {
    FEATURES.iter().find(|f| f.name == name)
}

/// The feature list as text (for `--list` and error messages).
pub fn describe() -> String {
    FEATURES
        .iter()
        .map(|f| {
            format!(
                "{:<18} {:<9} {} — {}",
                f.name,
                if f.optional { "optional" } else { "core" },
                f.covers,
                f.section
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_the_client_knows_them_all() {
        let mut names: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FEATURES.len());
        for f in FEATURES {
            assert!(
                crate::client::FEATURES.contains(&f.name),
                "the reference client does not implement {}",
                f.name
            );
        }
        assert!(feature("waiting").is_some_and(|f| !f.optional));
        assert!(feature("discovery").is_some_and(|f| f.optional));
        assert!(feature("nope").is_none());
    }
}
