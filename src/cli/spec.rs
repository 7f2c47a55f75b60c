//! `idprov spec` (the profile's rules and their coverage) and `idprov
//! bundle verify`.

use super::args::*;
use super::{fail, EXIT_USAGE};
use std::process::ExitCode;

pub(super) fn run_spec(s: SpecCommand) -> ExitCode {
    match s {
        SpecCommand::Coverage { format } => {
            let c = match idprov::spec::coverage::shipped() {
                Ok(c) => c,
                Err(e) => return fail(EXIT_USAGE, e),
            };
            match format {
                CoverageFormat::Text => out!("{}", idprov::spec::coverage::render(&c, false)),
                CoverageFormat::Markdown => {
                    out!("{}", idprov::spec::coverage::render(&c, true))
                }
                CoverageFormat::Json => match serde_json::to_string_pretty(&c) {
                    Ok(j) => outln!("{j}"),
                    Err(e) => return fail(EXIT_USAGE, e),
                },
            }
            ExitCode::SUCCESS
        }
        SpecCommand::Rules => match idprov::spec::rules() {
            Ok(rules) => {
                for r in rules {
                    outln!(
                        "{:<34} {:<6} {:<7} {:<12} {}",
                        r.id,
                        r.level.as_str(),
                        format!("{:?}", r.role).to_lowercase(),
                        r.section,
                        r.text
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_USAGE, e),
        },
    }
}

pub(super) fn run_bundle(b: BundleCommand) -> ExitCode {
    match b {
        // A file that is not there is a usage error (exit 2), not a bundle
        // that failed its manifest (exit 1).
        BundleCommand::Verify { file } if !file.is_file() => fail(
            super::EXIT_USAGE,
            format!("bundle {}: no such file", file.display()),
        ),
        BundleCommand::Verify { file } => match idprov::check::bundle::verify(&file) {
            Ok(v) => {
                out!("{}", idprov::check::bundle::summary(&v));
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, format!("bundle {}: {e}", file.display())),
        },
    }
}
