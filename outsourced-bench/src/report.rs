//! What the bench prints: a table for people, or with `--json` one JSON object per line (JSON
//! Lines: the run's settings first, then one object per figure), for scripts such as
//! `peers/run` that put our figures beside the peers'.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

static JSON: AtomicBool = AtomicBool::new(false);

/// Prints JSON Lines from now on instead of the table.
pub(crate) fn use_json() {
    JSON.store(true, Ordering::Relaxed);
}

fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// One measured figure.
pub(crate) enum Figure {
    /// A rate per second, with its unit ("jobs/s", "rows/s").
    Rate(f64, &'static str),
    /// Enqueue-to-start waits, in milliseconds.
    Latency {
        p50: f64,
        p95: f64,
        p99: f64,
        max: f64,
    },
    /// Resident memory in KiB, and its peak when known.
    Memory { kib: u64, peak_kib: Option<u64> },
    /// What happened instead of a figure ("none started").
    Note(String),
}

impl Figure {
    fn text(&self) -> String {
        match self {
            Figure::Rate(value, unit) => format!("{value:.0} {unit}"),
            Figure::Latency { p50, p95, p99, max } => {
                format!("p50 {p50:.1} p95 {p95:.1} p99 {p99:.1} max {max:.1} ms")
            }
            Figure::Memory { kib, peak_kib } => match peak_kib {
                Some(peak) => format!("{} (peak {})", mib(*kib), mib(*peak)),
                None => mib(*kib),
            },
            Figure::Note(note) => note.clone(),
        }
    }

    fn fields(&self) -> Value {
        match self {
            Figure::Rate(value, unit) => json!({ "value": value, "unit": unit }),
            Figure::Latency { p50, p95, p99, max } => {
                json!({ "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max })
            }
            Figure::Memory { kib, peak_kib } => json!({ "kib": kib, "peak_kib": peak_kib }),
            Figure::Note(note) => json!({ "note": note }),
        }
    }
}

/// Resident memory in words.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The table's heading and the run's settings (one object in JSON).
pub(crate) fn header(settings: &[(&str, Value)], lines: &[String]) {
    if json() {
        let object: serde_json::Map<String, Value> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        out!("{}", json!({ "settings": object }));
        return;
    }
    for text in lines {
        out!("# {text}");
    }
    row("via", "scenario", "settings", "figure", "vs database");
}

/// One figure: through which backend, of which scenario, with which settings, and its ratio
/// to what it is compared with (the database's own rate, or the same run without limits).
pub(crate) fn line(via: &str, scenario: &str, settings: &str, figure: Figure, versus: Option<f64>) {
    if json() {
        let mut object = json!({ "via": via, "scenario": scenario, "settings": settings });
        if let (Value::Object(all), Value::Object(more)) = (&mut object, figure.fields()) {
            all.extend(more);
            all.insert("versus".into(), json!(versus));
        }
        out!("{object}");
        return;
    }
    let versus = versus.map_or_else(String::new, |v| format!("{v:.2}x"));
    row(via, scenario, settings, &figure.text(), &versus);
}

fn row(via: &str, scenario: &str, settings: &str, figure: &str, versus: &str) {
    out!("{via:<5} {scenario:<26} {settings:<44} {figure:>16}  {versus}");
}

/// A remark under the figures (`{"note": ...}` in JSON).
pub(crate) fn note(text: &str) {
    if json() {
        out!("{}", json!({ "note": text }));
    } else {
        out!("      {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::Figure;

    #[test]
    fn a_rate_reads_the_same_in_both_forms() {
        let figure = Figure::Rate(12_345.4, "jobs/s");
        assert_eq!(figure.text(), "12345 jobs/s");
        assert_eq!(figure.fields()["value"], 12_345.4);
        assert_eq!(figure.fields()["unit"], "jobs/s");
    }
}
