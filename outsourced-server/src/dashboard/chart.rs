//! Charts drawn on the server as SVG, from the database's tallies (no script, no CDN): jobs
//! per period as bars (succeeded and failed stacked, enqueued as a line over them), and how
//! long starts waited (p50 and p95) as steps over the wait buckets. Only numbers and our own
//! words go into the markup, so it needs no escaping.

use std::fmt::Write;

use chrono::{DateTime, Duration, Utc};
use outsourced_backend_sql::tally::{Tally, WAIT_BOUNDS_MS, WAIT_BUCKETS};

/// Width of the plot, in SVG units (the page scales it).
const W: f64 = 720.0;
/// Height of the plot.
const H: f64 = 150.0;
/// Room on the left for the axis' labels.
const LEFT: f64 = 48.0;
/// Room at the bottom for the times.
const BOTTOM: f64 = 18.0;

/// The tallies of `slots` periods of `every`, the last of which holds `now`, from the
/// tallies of single minutes (epoch ms of each minute's start).
pub(crate) fn periods(
    minutes: &[(i64, Tally)],
    now: DateTime<Utc>,
    every: Duration,
    slots: usize,
) -> (DateTime<Utc>, Vec<Tally>) {
    let step = every.num_milliseconds();
    let last = now.timestamp_millis() - now.timestamp_millis().rem_euclid(step);
    let first = last - step * (slots as i64 - 1);
    let mut tallies = vec![Tally::default(); slots];
    for (minute, tally) in minutes {
        let slot = (minute - first).div_euclid(step);
        if let Some(into) = usize::try_from(slot).ok().and_then(|s| tallies.get_mut(s)) {
            into.add(tally);
        }
    }
    let start = DateTime::from_timestamp_millis(first).unwrap_or(now);
    (start, tallies)
}

/// Jobs per period from `start`, one period of `every` per tally: succeeded and failed for
/// good as stacked bars, enqueued as a line.
pub(crate) fn throughput(start: DateTime<Utc>, every: Duration, tallies: &[Tally]) -> String {
    let top = tallies
        .iter()
        .map(|t| (t.succeeded + t.failed).max(t.enqueued))
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = open(&format!("{top}"), "0");
    let width = (W - LEFT) / tallies.len().max(1) as f64;
    let y = |n: u64| (H - BOTTOM) * (1.0 - n as f64 / top as f64);
    let mut line = Vec::new();
    for (i, t) in tallies.iter().enumerate() {
        let x = LEFT + width * i as f64;
        let (ok, bad) = (t.succeeded, t.failed);
        bar(&mut svg, "ok", x, width, y(ok), y(0));
        bar(&mut svg, "bad", x, width, y(ok + bad), y(ok));
        line.push(format!("{:.1},{:.1}", x + width / 2.0, y(t.enqueued)));
    }
    let _ = write!(
        svg,
        r#"<polyline class="enqueued" points="{}"/>"#,
        line.join(" ")
    );
    close(svg, start, every, tallies.len())
}

/// How long the starts of each period waited past their run time: p50 and p95, read from the
/// wait buckets (so each is "at most" its bucket's bound), on a scale of the buckets.
pub(crate) fn waits(start: DateTime<Utc>, every: Duration, tallies: &[Tally]) -> String {
    let mut svg = open("> 5 min", "5 ms");
    let rows = WAIT_BUCKETS as f64;
    let width = (W - LEFT) / tallies.len().max(1) as f64;
    // p95 first, so that p50 shows over it where both fall in one bucket.
    for (share, class) in [(0.95, "p95"), (0.5, "p50")] {
        let mut points = Vec::new();
        for (i, tally) in tallies.iter().enumerate() {
            let Some(bound) = tally.wait_quantile(share) else {
                continue;
            };
            let bucket = WAIT_BOUNDS_MS
                .iter()
                .position(|&b| b == bound)
                .unwrap_or(WAIT_BUCKETS - 1);
            let y = (H - BOTTOM) * (1.0 - (bucket as f64 + 0.5) / rows);
            let x = LEFT + width * i as f64;
            points.push(format!("{x:.1},{y:.1} {:.1},{y:.1}", x + width));
        }
        let _ = write!(
            svg,
            r#"<polyline class="{class}" points="{}"/>"#,
            points.join(" ")
        );
    }
    for (label, bucket) in [("100 ms", 4.0), ("1 s", 7.0), ("30 s", 9.0)] {
        let y = (H - BOTTOM) * (1.0 - (bucket + 0.5) / rows);
        let _ = write!(
            svg,
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            LEFT - 4.0,
            y + 4.0
        );
    }
    close(svg, start, every, tallies.len())
}

/// The SVG's start, with the value axis labelled at its top and bottom.
fn open(top: &str, bottom: &str) -> String {
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" preserveAspectRatio="none" role="img">"#
    );
    let _ = write!(
        svg,
        r#"<text class="axis" x="{:.1}" y="10" text-anchor="end">{top}</text><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{bottom}</text><line class="base" x1="{LEFT}" y1="{:.1}" x2="{W}" y2="{:.1}"/>"#,
        LEFT - 4.0,
        LEFT - 4.0,
        H - BOTTOM,
        H - BOTTOM,
        H - BOTTOM,
    );
    svg
}

fn bar(svg: &mut String, class: &str, x: f64, width: f64, top: f64, bottom: f64) {
    if bottom - top > 0.0 {
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}"/>"#,
            (width - 1.0).max(0.5),
            bottom - top
        );
    }
}

/// The times of the first, middle and last periods under the plot, and the SVG's end.
fn close(mut svg: String, start: DateTime<Utc>, every: Duration, slots: usize) -> String {
    let width = (W - LEFT) / slots.max(1) as f64;
    for (i, anchor) in [
        (0, "start"),
        (slots / 2, "middle"),
        (slots.saturating_sub(1), "end"),
    ] {
        let at = start + every * i as i32;
        let x = LEFT + width * i as f64 + if anchor == "end" { width } else { 0.0 };
        let _ = write!(
            svg,
            r#"<text class="axis" x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{} UTC</text>"#,
            H - 4.0,
            at.format("%H:%M")
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_fall_in_their_periods() {
        let now = DateTime::from_timestamp(3_600 * 10 + 125, 0).expect("a time");
        let one = Tally {
            succeeded: 1,
            ..Tally::default()
        };
        let minute = |m: i64| (now.timestamp_millis() / 60_000 + m) * 60_000;
        let minutes = [(minute(0), one), (minute(-1), one), (minute(-60), one)];
        let (start, hour) = periods(&minutes, now, Duration::minutes(1), 60);
        assert_eq!(hour.len(), 60);
        assert_eq!((hour[59].succeeded, hour[58].succeeded), (1, 1));
        assert_eq!(
            hour.iter().map(|t| t.succeeded).sum::<u64>(),
            2,
            "an hour ago is out"
        );
        assert_eq!(start.timestamp_millis(), minute(-59));
        let (_, quarters) = periods(&minutes, now, Duration::minutes(15), 96);
        assert_eq!(quarters.iter().map(|t| t.succeeded).sum::<u64>(), 3);
    }

    #[test]
    fn charts_are_svg_with_a_bar_per_busy_period() {
        let now = DateTime::from_timestamp(0, 0).expect("a time");
        let busy = Tally {
            succeeded: 3,
            failed: 1,
            enqueued: 5,
            ..Tally::default()
        };
        let svg = throughput(now, Duration::minutes(1), &[Tally::default(), busy]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 2, "one ok and one bad bar");
        assert!(
            svg.contains(">5</text>"),
            "the axis tops at the most enqueued"
        );
    }
}
