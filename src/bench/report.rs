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
        "{:>5} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7} {:>9} {:>10}  errors",
        "conc",
        "devices",
        "prov/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "srv µs/op",
        "cores",
        "peak RSS",
        "gen µs/op"
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
            "{:>5} {:>8} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10} {:>7} {:>9} {:>10}  {errs}",
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
            l.generator_cpu_us
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    if r.levels.iter().any(|l| l.generator_cpu_us.is_some()) {
        let _ = writeln!(
            s,
            "gen µs/op: the load generator's own CPU per provisioning (this process, inside the timed window: TLS handshakes, secret posts, requests, answer checks; keys and signed requests are prepared before it)"
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
    s.push_str(&floors(r));
    s
}

/// The floors, the server's CPU per provisioning beside them, and the
/// load generator's beside its own.
pub fn floors(r: &BenchResult) -> String {
    let mut s = server_floors(r);
    if let Some(f) = &r.client_floor {
        let _ = writeln!(
            s,
            "client floor (the device's side, in-process): {:.0} µs = key exchange {:.0} + {} × ECDSA P-256 verify {:.0} + key schedule {:.0} + answer HMAC {:.1}",
            f.total_us,
            f.key_exchange_us,
            f.signature_verifies,
            f.signature_verify_us,
            f.key_schedule_us,
            f.hmac_us
        );
        let rows: Vec<_> = r
            .levels
            .iter()
            .filter_map(|l| Some((l.concurrency, l.generator_cpu_us?)))
            .collect();
        if !rows.is_empty() && f.total_us > 0.0 {
            let _ = writeln!(
                s,
                "load generator CPU per provisioning beside its floor:\n{:>5} {:>10} {:>16} {:>8}",
                "conc", "gen µs", "client floor µs", "× floor"
            );
            for (c, cpu) in rows {
                let _ = writeln!(
                    s,
                    "{c:>5} {cpu:>10.0} {:>16.0} {:>8.2}",
                    f.total_us,
                    cpu / f.total_us
                );
            }
        }
    }
    s
}

/// The server's floors and its CPU per provisioning beside them.
fn server_floors(r: &BenchResult) -> String {
    let mut s = String::new();
    if let Some(f) = &r.crypto_floor {
        let _ = writeln!(
            s,
            "crypto floor ({}, {}, in-process): {:.0} µs = key exchange {:.0} + handshake signature {:.0} + key schedule {:.0} + certificate signature {:.0} + HMACs {:.1}",
            f.group,
            f.suite,
            f.total_us,
            f.key_exchange_us,
            f.handshake_signature_us,
            f.key_schedule_us,
            f.certificate_signature_us,
            f.hmac_us
        );
    }
    let crypto = r.crypto_floor.as_ref().map(|f| f.total_us);
    let rows: Vec<_> = r
        .levels
        .iter()
        .filter_map(|l| Some((l, l.server_cpu_us?)))
        .collect();
    if rows.is_empty() || (crypto.is_none() && r.stack_floor.is_empty()) {
        return s;
    }
    let _ = writeln!(
        s,
        "server CPU per provisioning beside the floors:\n{:>5} {:>10} {:>14} {:>8} {:>15} {:>9}",
        "conc", "server µs", "stack floor µs", "× stack", "crypto floor µs", "× crypto"
    );
    for (l, cpu) in rows {
        let stack = r
            .stack_floor
            .iter()
            .find(|f| f.concurrency == l.concurrency)
            .and_then(|f| f.server_cpu_us);
        let ratio = |floor: Option<f64>| {
            floor
                .filter(|f| *f > 0.0)
                .map(|f| format!("{:.2}", cpu / f))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            s,
            "{:>5} {:>10.0} {:>14} {:>8} {:>15} {:>9}",
            l.concurrency,
            cpu,
            fmt_opt(stack),
            ratio(stack),
            fmt_opt(crypto),
            ratio(crypto)
        );
    }
    s
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "n/a".into())
}

/// One line of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points, x > 0.
    pub points: Vec<(f64, f64)>,
}

const COLOURS: &[&str] = &[
    "#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f",
];

fn fmt_tick(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A self-contained SVG line plot: log-scale x (concurrency sweeps are
/// geometric), linear or log y, tick values on both axes, axis titles with
/// units, a legend, and an optional horizontal reference line (a limit).
pub fn svg_plot(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series],
    log_y: bool,
    limit: Option<(&str, f64)>,
) -> String {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let (w, h) = (640.0, 340.0);
    let (ml, mr, mt, mb) = (70.0, 20.0, 40.0, 60.0);
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let mut xs: Vec<f64> = pts.iter().map(|p| p.0.max(1.0)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let xmin = xs.first().copied().unwrap_or(1.0);
    let xmax = xs.last().copied().unwrap_or(2.0).max(xmin * 2.0);
    let data_max = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    let mut ymax = data_max;
    if let Some((_, l)) = limit {
        ymax = ymax.max(l);
    }
    // A limit far above the data would flatten it: switch to a log scale.
    let auto_log = !log_y && limit.is_some_and(|(_, l)| data_max > 0.0 && l > 5.0 * data_max);
    let log_y = log_y || auto_log;
    let ylabel = if auto_log {
        format!("{ylabel} (log scale)")
    } else {
        ylabel.to_string()
    };
    // Linear: a "nice" step (1, 2 or 5 × 10^k) and a top on a step.
    let step = {
        let raw = if ymax <= 0.0 { 1.0 } else { ymax * 1.05 / 5.0 };
        let mag = 10f64.powf(raw.log10().floor());
        let f = raw / mag;
        mag * if f <= 1.0 {
            1.0
        } else if f <= 2.0 {
            2.0
        } else if f <= 5.0 {
            5.0
        } else {
            10.0
        }
    };
    let ymax = if ymax <= 0.0 {
        1.0
    } else {
        (ymax * 1.05 / step).ceil() * step
    };
    let ymin_log = pts
        .iter()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::INFINITY, f64::min)
        .min(ymax / 10.0)
        .max(1e-3);
    let (lo, hi) = (
        10f64.powf(ymin_log.log10().floor()),
        10f64.powf(ymax.log10().ceil()),
    );
    let px = |x: f64| {
        ml + (x.max(1.0).ln() - xmin.ln()) / (xmax.ln() - xmin.ln()).max(1e-9) * (w - ml - mr)
    };
    let py = |y: f64| {
        let f = if log_y {
            (y.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10()).max(1e-9)
        } else {
            y / ymax
        };
        h - mb - f * (h - mt - mb)
    };
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"><title>{t}</title><rect width="{w}" height="{h}" fill="#fff"/>"##,
        t = esc(title)
    );
    // Axes.
    let _ = write!(
        s,
        r##"<line x1="{ml}" y1="{b}" x2="{r}" y2="{b}" stroke="#333"/><line x1="{ml}" y1="{mt}" x2="{ml}" y2="{b}" stroke="#333"/>"##,
        b = h - mb,
        r = w - mr
    );
    // x ticks: the measured levels.
    for x in &xs {
        let _ = write!(
            s,
            r##"<line x1="{X:.1}" y1="{b}" x2="{X:.1}" y2="{b5}" stroke="#333"/><text x="{X:.1}" y="{ty}" font-size="11" text-anchor="middle">{v}</text>"##,
            X = px(*x),
            b = h - mb,
            b5 = h - mb + 5.0,
            ty = h - mb + 18.0,
            v = fmt_tick(*x)
        );
    }
    // y ticks: decades (log) or fifths (linear), with grid lines.
    let ticks: Vec<f64> = if log_y {
        let mut v = Vec::new();
        let mut d = lo;
        while d <= hi * 1.0001 {
            v.push(d);
            d *= 10.0;
        }
        v
    } else {
        (0..)
            .map(|i| i as f64 * step)
            .take_while(|v| *v <= ymax * 1.0001)
            .collect()
    };
    for y in ticks {
        let _ = write!(
            s,
            r##"<line x1="{ml}" y1="{Y:.1}" x2="{r}" y2="{Y:.1}" stroke="#eee"/><text x="{tx}" y="{ty:.1}" font-size="11" text-anchor="end">{v}</text>"##,
            Y = py(y),
            r = w - mr,
            tx = ml - 6.0,
            ty = py(y) + 4.0,
            v = fmt_tick(y)
        );
    }
    if let Some((name, v)) = limit {
        let _ = write!(
            s,
            r##"<line x1="{ml}" y1="{Y:.1}" x2="{r}" y2="{Y:.1}" stroke="#888" stroke-dasharray="6 4"/><text x="{r}" y="{ty:.1}" font-size="11" text-anchor="end" fill="#555">limit: {n} = {v:.0}</text>"##,
            Y = py(v),
            r = w - mr,
            ty = py(v) - 5.0,
            n = esc(name)
        );
    }
    for (i, se) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = se
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"##,
            path.join(" ")
        );
        for (x, y) in &se.points {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{}: {} at {}</title></circle>"##,
                px(*x),
                py(*y),
                esc(&se.name),
                fmt_tick(*y),
                fmt_tick(*x)
            );
        }
        // Legend.
        let ly = mt + 4.0 + i as f64 * 16.0;
        let _ = write!(
            s,
            r##"<rect x="{lx}" y="{ry}" width="12" height="3" fill="{c}"/><text x="{tx}" y="{ty}" font-size="11">{n}</text>"##,
            lx = ml + 10.0,
            ry = ly,
            tx = ml + 28.0,
            ty = ly + 5.0,
            n = esc(&se.name)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{cx}" y="{xy}" font-size="12" text-anchor="middle">{xl}</text><text x="16" y="{cy}" font-size="12" transform="rotate(-90 16 {cy})" text-anchor="middle">{yl}</text><text x="{cx}" y="22" font-size="14" text-anchor="middle">{t}</text></svg>"##,
        cx = (ml + w - mr) / 2.0,
        xy = h - 14.0,
        cy = (mt + h - mb) / 2.0,
        xl = esc(xlabel),
        yl = esc(&ylabel),
        t = esc(title)
    );
    s
}

/// Self-contained HTML: throughput against the signing limit, latency
/// percentiles on a log scale, and the table.
pub fn html(r: &BenchResult) -> String {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let line = |name: &str, f: &dyn Fn(&super::LevelResult) -> f64| Series {
        name: name.into(),
        points: r
            .levels
            .iter()
            .map(|l| (l.concurrency as f64, f(l)))
            .collect(),
    };
    // The throughput plot's references are the floors measured in the same
    // run when there are any: the stack floor as a curve of its own, the
    // crypto floor as the line no server on these cores can pass. Only
    // without them does openssl's signing rate stand in (it sits far above
    // any whole provisioning, and flattened the curve).
    let mut series = vec![line("idprov server provisions/s", &|l| l.per_second)];
    if !r.stack_floor.is_empty() {
        series.push(Series {
            name: "stack floor provisions/s (TLS + HTTP + one signature)".into(),
            points: r
                .stack_floor
                .iter()
                .map(|l| (l.concurrency as f64, l.per_second))
                .collect(),
        });
    }
    let crypto_limit = r
        .crypto_floor
        .as_ref()
        .filter(|f| f.total_us > 0.0)
        .map(|f| r.cpus.max(1) as f64 * 1e6 / f.total_us);
    let limit = match crypto_limit {
        Some(v) => Some(("crypto floor on these cores", v)),
        None => r
            .limits
            .ecdsa_p256_sign_per_s
            .map(|v| ("openssl ECDSA P-256 sign/s (one per certificate)", v)),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>idprov bench</title><style>body{{font:14px system-ui,sans-serif;margin:1.5em;max-width:100%}}svg{{max-width:100%;height:auto}}pre{{background:#f6f6f6;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere;overflow-x:auto}}</style></head><body><h1>idprov bench</h1><p>Target <code>{}</code> · {} · started {}</p>{}{}<pre>{}</pre></body></html>\n",
        esc(&r.target),
        if r.fresh_tls { "fresh TLS handshake per device" } else { "kept-alive connections" },
        esc(&r.started),
        svg_plot(
            "throughput vs concurrency",
            "concurrency (devices at once, log scale)",
            "provisions per second",
            &series,
            false,
            limit,
        ),
        svg_plot(
            "latency of one provisioning vs concurrency",
            "concurrency (devices at once, log scale)",
            "latency, ms (log scale)",
            &[
                line("p50", &|l| l.p50_ms),
                line("p90", &|l| l.p90_ms),
                line("p99", &|l| l.p99_ms),
            ],
            true,
            None,
        ),
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
