//! The profile (docs/PROTOCOL.md) rendered as HTML.

/// The profile (docs/PROTOCOL.md) as a self-contained HTML page, with an
/// anchor per rule so reports can link to `PROTOCOL.html#<rule-id>`.
pub fn protocol_html() -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    // Inline markup: `code` and **bold**; a rule id gets its anchor.
    let inline = |s: &str| -> String {
        let mut out = String::new();
        let mut code = false;
        let mut bold = false;
        let e = esc(s);
        let mut rest = e.as_str();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**`") {
                if let Some((id, after)) = r.split_once("`**") {
                    out.push_str(&format!(
                        "<a id=\"{id}\" href=\"#{id}\"><strong><code>{id}</code></strong></a>"
                    ));
                    rest = after;
                    continue;
                }
            }
            if let Some(r) = rest.strip_prefix("**") {
                out.push_str(if bold { "</strong>" } else { "<strong>" });
                bold = !bold;
                rest = r;
                continue;
            }
            if let Some(r) = rest.strip_prefix('`') {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
                rest = r;
                continue;
            }
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
        if code {
            out.push_str("</code>");
        }
        if bold {
            out.push_str("</strong>");
        }
        out
    };
    let mut h = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>IDProv profile (idprov)</title>\n<style>body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}pre{background:#f6f6f6;padding:6px;overflow:auto}a[id]:target strong{background:#ffef9e}code{font-size:0.95em}</style></head><body>\n",
    );
    let mut in_code = false;
    let mut in_list = false;
    let mut para = String::new();
    let flush = |h: &mut String, para: &mut String, in_list: &mut bool| {
        if !para.is_empty() {
            if *in_list {
                h.push_str(&format!("<li>{para}</li>\n"));
            } else {
                h.push_str(&format!("<p>{para}</p>\n"));
            }
            para.clear();
        }
    };
    for line in crate::spec::PROTOCOL_MD.lines() {
        if line.trim_start().starts_with("```") {
            flush(&mut h, &mut para, &mut in_list);
            h.push_str(if in_code { "</pre>\n" } else { "<pre>" });
            in_code = !in_code;
            continue;
        }
        if in_code || line.trim_start().starts_with('|') {
            if !in_code {
                flush(&mut h, &mut para, &mut in_list);
                h.push_str(&format!("<pre>{}</pre>\n", esc(line)));
            } else {
                h.push_str(&esc(line));
                h.push('\n');
            }
            continue;
        }
        let t = line.trim_start();
        if let Some(level) = ["### ", "## ", "# "].iter().position(|p| t.starts_with(p)) {
            flush(&mut h, &mut para, &mut in_list);
            if in_list {
                h.push_str("</ul>\n");
                in_list = false;
            }
            let n = 3 - level;
            let text = t.trim_start_matches('#').trim();
            h.push_str(&format!("<h{n}>{}</h{n}>\n", inline(text)));
            continue;
        }
        if t.is_empty() {
            flush(&mut h, &mut para, &mut in_list);
            if in_list {
                h.push_str("</ul>\n");
                in_list = false;
            }
            continue;
        }
        let item = t.strip_prefix("- ").or_else(|| {
            t.split_once(". ")
                .filter(|(d, _)| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                .map(|(_, r)| r)
        });
        if let Some(item) = item {
            flush(&mut h, &mut para, &mut in_list);
            if !in_list {
                h.push_str("<ul>\n");
                in_list = true;
            }
            para.push_str(&inline(item));
            continue;
        }
        if !para.is_empty() {
            para.push(' ');
        }
        para.push_str(&inline(t));
    }
    flush(&mut h, &mut para, &mut in_list);
    if in_list {
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}
