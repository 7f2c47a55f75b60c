//! The progress bar every long command shows on a terminal: one look
//! (`template`, indicatif's syntax), hidden when off.

/// A bar of `len` steps drawn with `template`, or a hidden one when `on`
/// is false (not a terminal, or `--quiet`).
pub(crate) fn bar(len: u64, on: bool, template: &str) -> indicatif::ProgressBar {
    if !on {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
