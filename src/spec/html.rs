//! The profile (docs/PROTOCOL.md) rendered as HTML by a CommonMark parser
//! (pulldown-cmark), with an anchor per rule.

use pulldown_cmark::{html, Event, Options, Parser, Tag, TagEnd};

const HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>IDProv profile (idprov)</title>\n<style>body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}pre{background:#f6f6f6;padding:6px;overflow:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}a[id]:target strong{background:#ffef9e}code{font-size:0.95em}</style></head><body>\n";

/// A short Markdown text (a rule's words, a case's rationale) as inline
/// HTML: `**Note:**` becomes bold, `code` becomes code. Raw HTML in the text
/// is shown as text, never passed through.
pub fn inline_html(md: &str) -> String {
    let events = Parser::new(md).map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        e => e,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    let t = out.trim();
    // One paragraph needs no <p>: it sits inside a list item or a cell.
    match t.strip_prefix("<p>").and_then(|r| r.strip_suffix("</p>")) {
        Some(inner) if !inner.contains("<p>") => inner.to_string(),
        _ => t.to_string(),
    }
}

/// Whether `text` is a rule identifier (`area.name`, lower case).
fn is_rule_id(text: &str) -> bool {
    text.contains('.')
        && !text.starts_with('.')
        && !text.ends_with('.')
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// The profile (docs/PROTOCOL.md) as a self-contained HTML page, with an
/// anchor per rule so reports can link to `PROTOCOL.html#<rule-id>`: a rule
/// opens with its identifier in bold code (`**`area.name`**`), which
/// becomes a link to itself.
pub fn protocol_html() -> String {
    let events: Vec<Event<'_>> =
        Parser::new_ext(crate::spec::PROTOCOL_MD, Options::ENABLE_TABLES).collect();
    let mut out: Vec<Event<'_>> = Vec::with_capacity(events.len());
    let mut i = 0;
    while i < events.len() {
        if let (
            Event::Start(Tag::Strong),
            Some(Event::Code(id)),
            Some(Event::End(TagEnd::Strong)),
        ) = (&events[i], events.get(i + 1), events.get(i + 2))
        {
            if is_rule_id(id) {
                // The id holds only [a-z0-9.-]: nothing to escape.
                out.push(Event::InlineHtml(
                    format!("<a id=\"{id}\" href=\"#{id}\"><strong><code>{id}</code></strong></a>")
                        .into(),
                ));
                i += 3;
                continue;
            }
        }
        out.push(events[i].clone());
        i += 1;
    }
    let mut page = String::from(HEAD);
    html::push_html(&mut page, out.into_iter());
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_its_anchor_and_markdown_is_formatted() {
        let page = protocol_html();
        let rules = crate::spec::rules().unwrap();
        assert!(rules.len() > 40, "{}", rules.len());
        for r in &rules {
            assert!(
                page.contains(&format!("<a id=\"{0}\" href=\"#{0}\">", r.id)),
                "no anchor for {}",
                r.id
            );
        }
        // Markdown is rendered, not shown: no literal emphasis markers, the
        // tables are tables, code blocks are pre.
        assert!(!page.contains("**Note:**"), "literal emphasis left");
        assert!(page.contains("<strong>Note:</strong>"));
        assert!(page.contains("<table>") && page.contains("<pre>"));
        assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>\n"));
        assert!(!is_rule_id("Note:") && !is_rule_id("a") && is_rule_id("oob.valid-until"));
    }
}
