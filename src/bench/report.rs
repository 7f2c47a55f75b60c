//! Renderings of a benchmark: terminal table, bench.json, bench.html with
//! self-contained SVG plots.

use super::BenchResult;
use std::fmt::Write as _;
use std::path::Path;

/// The terminal table.
pub fn table(r: &BenchResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>5} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7} {:>9}  errors",
        "conc",
        "devices",
        "prov/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "srv µs/op",
        "cores",
        "peak RSS"
    );
    for l in &r.levels {
        let errs = if l.errors.is_empty() {
            "0".to_string()
        } else {
            l.errors
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(
            s,
            "{:>5} {:>8} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10} {:>7} {:>9}  {errs}",
            l.concurrency,
            l.provisioned,
            l.per_second,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.max_ms,
            l.server_cpu_us
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "-".into()),
            l.server_cores
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "-".into()),
            l.server_peak_rss_kib
                .map(|v| format!("{} MiB", v / 1024))
                .unwrap_or_else(|| "-".into()),
        );
    }
    let lim = &r.limits;
    let _ = writeln!(
        s,
        "limits (openssl speed, this machine, {} CPUs): ECDSA P-256 {} sign/s · Ed25519 {} sign/s · HMAC-SHA256 {} op/s at {} B",
        r.cpus,
        fmt_opt(lim.ecdsa_p256_sign_per_s),
        fmt_opt(lim.ed25519_sign_per_s),
        fmt_opt(lim.hmac_sha256_per_s),
        lim.hmac_bytes
    );
    s
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "n/a".into())
}

fn svg_line(points: &[(f64, f64)], title: &str, xlabel: &str, ylabel: &str) -> String {
    let (w, h, m) = (560.0, 300.0, 50.0);
    let xmax = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let ymax = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    // Logarithmic x (concurrency sweeps are geometric).
    let lx = |x: f64| m + (x.max(1.0).ln() / xmax.max(2.0).ln()) * (w - 2.0 * m);
    let ly = |y: f64| h - m - (y / ymax) * (h - 2.0 * m);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"><title>{title}</title>"#
    );
    let _ = write!(
        s,
        r##"<rect width="{w}" height="{h}" fill="#fff"/><line x1="{m}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{m}" y1="{m}" x2="{m}" y2="{}" stroke="#333"/>"##,
        h - m,
        w - m,
        h - m,
        h - m
    );
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", lx(*x), ly(*y)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#1565c0" stroke-width="2" points="{}"/>"##,
        path.join(" ")
    );
    for (x, y) in points {
        let _ = write!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1565c0"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{:.0}</text><text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            lx(*x),
            ly(*y),
            lx(*x),
            ly(*y) - 8.0,
            y,
            lx(*x),
            h - m + 16.0,
            x
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{xlabel}</text><text x="14" y="{}" font-size="12" transform="rotate(-90 14 {})" text-anchor="middle">{ylabel}</text><text x="{}" y="20" font-size="14" text-anchor="middle">{title}</text></svg>"#,
        w / 2.0,
        h - 12.0,
        h / 2.0,
        h / 2.0,
        w / 2.0
    );
    s
}

fn svg_latency(r: &BenchResult) -> String {
    let (w, h, m) = (560.0, 300.0, 50.0);
    let ymax = r.levels.iter().map(|l| l.p99_ms).fold(1.0, f64::max) * 1.15;
    let n = r.levels.len().max(1) as f64;
    let group = (w - 2.0 * m) / n;
    let bar = group / 4.0;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"><title>latency percentiles</title><rect width="{w}" height="{h}" fill="#fff"/><line x1="{m}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        h - m,
        w - m,
        h - m
    );
    for (i, l) in r.levels.iter().enumerate() {
        for (j, (v, colour)) in [
            (l.p50_ms, "#90caf9"),
            (l.p90_ms, "#42a5f5"),
            (l.p99_ms, "#0d47a1"),
        ]
        .iter()
        .enumerate()
        {
            let x = m + i as f64 * group + (j as f64 + 0.5) * bar;
            let bh = (v / ymax) * (h - 2.0 * m);
            let _ = write!(
                s,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{colour}"/>"##,
                h - m - bh,
                bar * 0.9
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">c={} (p99 {:.1} ms)</text>"#,
            m + (i as f64 + 0.5) * group,
            h - m + 16.0,
            l.concurrency,
            l.p99_ms
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="20" font-size="14" text-anchor="middle">latency p50 / p90 / p99 (ms)</text></svg>"#,
        w / 2.0
    );
    s
}

/// Self-contained HTML.
pub fn html(r: &BenchResult) -> String {
    let points: Vec<(f64, f64)> = r
        .levels
        .iter()
        .map(|l| (l.concurrency as f64, l.per_second))
        .collect();
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>idprov bench</title><style>body{{font:14px system-ui,sans-serif;margin:1.5em}}pre{{background:#f6f6f6;padding:8px}}</style></head><body><h1>idprov bench</h1><p>Target <code>{}</code> · {} · started {}</p>{}{}<pre>{}</pre></body></html>\n",
        esc(&r.target),
        if r.fresh_tls { "fresh TLS handshake per device" } else { "kept-alive connections" },
        esc(&r.started),
        svg_line(&points, "provisions per second vs concurrency", "concurrency", "provisions/s"),
        svg_latency(r),
        esc(&table(r))
    )
}

/// Writes bench.json and bench.html into `dir`.
pub fn write(r: &BenchResult, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomic(&dir.join("bench.json"), &json, crate::fsutil::MODE_PUBLIC)?;
    crate::fsutil::write_atomic(
        &dir.join("bench.html"),
        html(r).as_bytes(),
        crate::fsutil::MODE_PUBLIC,
    )
}
