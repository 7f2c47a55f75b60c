//! The self-contained HTML rendering of a report.

use super::*;

/// The scenario behind a case id, for its rationale and fix.
fn case_doc(id: &str) -> Option<Scenario> {
    crate::check::scenario::catalogue()
        .ok()?
        .into_iter()
        .find(|s| s.id == id)
}

impl Report {
    /// Self-contained HTML with a filterable table and per-case evidence.
    pub fn html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let s = &self.summary;
        let mut areas: BTreeMap<String, ()> = BTreeMap::new();
        for c in &self.cases {
            areas.insert(c.id.split('.').nth(1).unwrap_or("").to_string(), ());
        }
        let mut h = String::new();
        let _ = write!(
            h,
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>idprov check {role}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}}
.pass{{color:#176c2c}}.fail{{color:#b00020;font-weight:bold}}.skip{{color:#8a6d00}}.info{{color:#00639b}}.inconclusive{{color:#6a1b9a;font-weight:bold}}
pre{{background:#f6f6f6;padding:6px;white-space:pre-wrap;word-break:break-all;max-height:20em;overflow:auto}}
details{{margin:2px 0}}.counts span{{margin-right:1em}}
</style></head><body>
{banner}<h1>idprov check {role}: {outcome}</h1>
<p>Target <code>{target}</code> · suite {version} · seed <code>{seed}</code> · started {started} · {ms} ms · capabilities {caps}</p>
<p class="counts"><span class="pass">{p} pass</span><span class="fail">{f} fail{kn}</span><span class="skip">{k} skip</span><span class="info">{i} info</span><span class="inconclusive">{u} inconclusive</span></p>
<p>Filter: <select id="fv"><option value="">any verdict</option><option>pass</option><option>fail</option><option>skip</option><option>info</option><option>inconclusive</option></select>
<select id="fl"><option value="">any level</option><option>MUST</option><option>SHOULD</option><option>MAY</option></select>
<select id="fa"><option value="">any area</option>"#,
            role = esc(&self.role),
            outcome = match self.outcome.result {
                RunResult::Error => "ERROR (could not test)",
                _ if self.outcome.failed => "FAILED",
                _ => "passed",
            },
            target = esc(&self.target),
            version = esc(&self.version),
            seed = self.seed,
            started = esc(&self.started),
            ms = self.ms,
            caps = esc(&self.capabilities.join(", ")),
            p = s.pass,
            f = s.fail,
            kn = esc(&s.known_note()),
            k = s.skip,
            i = s.info,
            u = s.inconclusive,
            banner = self
                .outcome
                .allowed_inconclusive_line()
                .map(|l| format!("<p class=\"inconclusive\">{}</p>\n", esc(&l)))
                .unwrap_or_default()
        );
        for a in areas.keys() {
            let _ = write!(h, "<option>{}</option>", esc(a));
        }
        h.push_str("</select></p>\n");
        if let Some(err) = &self.outcome.error {
            let _ = writeln!(h, "<p class=\"fail\">Setup error: {}</p>", esc(err));
        }
        for reason in &self.outcome.run_failures {
            let _ = writeln!(h, "<p class=\"fail\">Run failed: {}</p>", esc(reason));
        }
        let by_rule = self.failures_by_rule();
        if !by_rule.is_empty() {
            h.push_str("<h2>Failures by rule broken</h2><ul>");
            for (rule, cases) in &by_rule {
                let text = crate::spec::rule(rule)
                    .map(|r| format!("{}: {}", r.level.as_str(), r.text))
                    .unwrap_or_default();
                let _ = write!(
                    h,
                    "<li><a href=\"PROTOCOL.html#{r}\"><code>{r}</code></a>: {n} case(s) — {c}<br><small>How to fix: {t}</small></li>",
                    r = esc(rule),
                    n = cases.len(),
                    c = esc(&cases.join(", ")),
                    t = crate::spec::html::inline_html(&text)
                );
            }
            h.push_str("</ul>\n");
        }
        h.push_str("<table id=\"t\"><thead><tr><th>case</th><th>level</th><th>section</th><th>verdict</th><th>detail and evidence</th></tr></thead><tbody>\n");
        for c in &self.cases {
            let area = c.id.split('.').nth(1).unwrap_or("");
            let _ = write!(
                h,
                "<tr data-v=\"{v}\" data-l=\"{l}\" data-a=\"{a}\"><td><code>{id}</code><br>{title}</td><td>{l}</td><td>{sec}</td><td class=\"{v}\">{v}{known}</td><td>{detail}",
                v = c.verdict.as_str(),
                l = c.level.as_str(),
                a = esc(area),
                id = esc(&c.id),
                title = esc(&c.title),
                sec = esc(&c.section),
                known = c
                    .known_failing
                    .as_ref()
                    .map(|r| format!(" (known failing: {})", esc(r)))
                    .unwrap_or_default(),
                detail = esc(&c.detail)
            );
            if !c.rules.is_empty() {
                let links: Vec<String> = c
                    .rules
                    .iter()
                    .map(|r| format!("<a href=\"PROTOCOL.html#{0}\"><code>{0}</code></a>", esc(r)))
                    .collect();
                let _ = write!(h, "<div class=\"rules\">rules: {}</div>", links.join(" "));
            }
            if !c.incidental.is_empty() {
                let _ = write!(
                    h,
                    "<p><b>Own rules:</b> {}</p><p><b>Incidental</b> (rules other than this case's, met on the way; how to fix: what the rule says):</p><ul>",
                    c.own_verdict.unwrap_or(c.verdict).as_str()
                );
                for i in &c.incidental {
                    let text = crate::spec::rule(&i.rule)
                        .map(|r| format!("{}: {}", r.level.as_str(), r.text))
                        .unwrap_or_default();
                    let _ = write!(
                        h,
                        "<li><a href=\"PROTOCOL.html#{r}\"><code>{r}</code></a> at step {s}: {d}<br><small>{t}</small></li>",
                        r = esc(&i.rule),
                        s = i.step,
                        d = esc(&i.detail),
                        t = crate::spec::html::inline_html(&text)
                    );
                }
                h.push_str("</ul>");
            }
            if c.own_verdict.unwrap_or(c.verdict) == Verdict::Fail {
                // What the rule says and why it matters, where it is needed.
                for r in c.rules.iter().filter_map(|r| crate::spec::rule(r)) {
                    let _ = write!(
                        h,
                        "<blockquote><code>{}</code> {}: {}</blockquote>",
                        esc(&r.id),
                        r.level.as_str(),
                        crate::spec::html::inline_html(&r.text)
                    );
                }
                if let Some(s) = case_doc(&c.id) {
                    let _ = write!(
                        h,
                        "<p><b>Why it matters:</b> {}<br><b>How to fix:</b> {}</p>",
                        crate::spec::html::inline_html(&s.rationale),
                        crate::spec::html::inline_html(&s.fix)
                    );
                }
            }
            if !c.evidence.is_empty() {
                let _ = write!(
                    h,
                    "<details{}><summary>{} exchanges</summary>",
                    if c.verdict == Verdict::Fail {
                        " open"
                    } else {
                        ""
                    },
                    c.evidence.len()
                );
                for e in &c.evidence {
                    if e.method == "NOTE" {
                        let _ = write!(h, "<pre>step {}: {}</pre>", e.step, esc(&e.request_body));
                        continue;
                    }
                    let headers: String = e
                        .response_headers
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}\n"))
                        .collect();
                    let status = match (&e.status, &e.error) {
                        (Some(s), _) => s.to_string(),
                        (None, Some(err)) => format!("no response: {}", esc(err)),
                        (None, None) => "no response".into(),
                    };
                    // The status line always shows; long bodies fold under it.
                    let _ = write!(
                        h,
                        "<pre>step {step} · {m} {url} as {cred} · {ms} ms → {status}</pre>",
                        step = e.step,
                        m = esc(&e.method),
                        url = esc(&e.url),
                        cred = esc(&e.credential),
                        ms = e.ms,
                    );
                    let body = format!(
                        "{}\n→ {status}\n{}\n{}",
                        esc(&e.request_body),
                        esc(&headers),
                        esc(&e.response_body)
                    );
                    if e.request_body.len() + e.response_body.len() > 600 {
                        let _ = write!(
                            h,
                            "<details><summary>bodies ({} bytes)</summary><pre>{body}</pre></details>",
                            e.request_body.len() + e.response_body.len()
                        );
                    } else {
                        let _ = write!(h, "<pre>{body}</pre>");
                    }
                }
                h.push_str("</details>");
            }
            h.push_str("</td></tr>\n");
        }
        h.push_str(
            r#"</tbody></table>
<script>
function f(){var v=document.getElementById('fv').value,l=document.getElementById('fl').value,a=document.getElementById('fa').value;
document.querySelectorAll('#t tbody tr').forEach(function(r){r.style.display=((!v||r.dataset.v==v)&&(!l||r.dataset.l==l)&&(!a||r.dataset.a==a))?'':'none';});}
['fv','fl','fa'].forEach(function(i){document.getElementById(i).addEventListener('change',f);});
</script></body></html>
"#,
        );
        h
    }
}
