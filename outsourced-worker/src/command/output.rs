//! What a handler wrote: the first and the last bytes of a stream, bounded whatever its length,
//! kept where the worker can read them even when a reader had to be given up on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use outsourced_core::check_result;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of a long output's start a result keeps however it is shortened.
const KEEP_HEAD: usize = 4 * 1024;

/// The largest char boundary of `text` at or before `at`.
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The longest last line of standard error a failure's message carries.
const MAX_LINE: usize = 500;

/// The kept bytes of one output stream. Clones share them.
#[derive(Clone, Debug)]
pub(crate) struct Output(Arc<Mutex<Kept>>);

#[derive(Debug)]
struct Kept {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    /// Bytes neither in the head nor in the tail.
    skipped: u64,
}

impl Output {
    /// Keeps up to `head` first bytes and `tail` last bytes.
    pub(crate) fn new(head: usize, tail: usize) -> Self {
        Output(Arc::new(Mutex::new(Kept {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap: head,
            tail_cap: tail,
            skipped: 0,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `stream` to its end (nothing when there is none).
    pub(crate) async fn read_all(&self, stream: Option<impl AsyncRead + Unpin>) {
        let Some(mut stream) = stream else {
            return;
        };
        // On the heap: a buffer in the future would make every handler's future large.
        let mut chunk = vec![0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            self.lock().push(&chunk[..n]);
        }
    }

    /// The last line with text in it, trimmed and shortened.
    pub(crate) fn last_line(&self) -> Option<String> {
        let kept = self.lock();
        let tail: Vec<u8> = kept.tail.iter().copied().collect();
        let text = if tail.is_empty() {
            String::from_utf8_lossy(&kept.head).into_owned()
        } else {
            String::from_utf8_lossy(&tail).into_owned()
        };
        let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
        Some(shorten(line))
    }

    /// The kept text under a heading that says what was kept, or `None` when nothing was
    /// written.
    pub(crate) fn report(&self, name: &str) -> Option<String> {
        let kept = self.lock();
        if kept.head.is_empty() && kept.tail.is_empty() {
            return None;
        }
        let head = String::from_utf8_lossy(&kept.head);
        let tail: Vec<u8> = kept.tail.iter().copied().collect();
        let tail = String::from_utf8_lossy(&tail);
        let heading = match kept.skipped {
            0 => format!("{name}:"),
            n => format!(
                "{name} ({} bytes; {n} in the middle left out):",
                kept.total()
            ),
        };
        let body = match kept.skipped {
            0 => format!("{head}{tail}"),
            n => format!(
                "{}\n[... {n} bytes left out ...]\n{tail}",
                head.trim_end_matches('\n')
            ),
        };
        let text = format!("{heading}\n{}", body.trim_end());
        Some(text)
    }

    /// At most the last `max` bytes under a heading, or `None` when nothing was written.
    pub(crate) fn tail_report(&self, name: &str, max: usize) -> Option<String> {
        let text = self.text();
        let text = text.trim_end();
        if text.is_empty() {
            return None;
        }
        let mut start = text.len().saturating_sub(max);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let shown = text[start..].trim_start_matches('\n');
        Some(match start {
            0 => format!("{name}:\n{text}"),
            _ => format!("{name} (its last {} bytes):\n{shown}", shown.len()),
        })
    }

    /// What the program wrote, as a job's result: the JSON value when all of it is one that
    /// fits, else the text (its head and tail when it was long) as a JSON string, shortened
    /// from the front until it fits; `None` when it wrote nothing but white space.
    pub(crate) fn as_result(&self) -> Option<Value> {
        let text = self.text();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return None;
        }
        if let Ok(value) = serde_json::from_str::<Value>(trimmed)
            && check_result(&value).is_ok()
        {
            return Some(value);
        }
        let mut text = trimmed.to_owned();
        // Escapes can make a string's JSON longer than its text: drop a quarter after the
        // first 4 KiB until it fits, so that both its start (a usage line, a header) and its
        // end (what tells most) stay.
        let keep = floor_boundary(&text, KEEP_HEAD);
        while check_result(&Value::String(text.clone())).is_err() {
            let mut end = (keep + (text.len() - keep) / 4).max(keep + 1);
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(keep..end, "[...]");
        }
        Some(Value::String(text))
    }

    /// All the kept text, with a marker where bytes were left out.
    fn text(&self) -> String {
        let kept = self.lock();
        let head = String::from_utf8_lossy(&kept.head);
        let tail: Vec<u8> = kept.tail.iter().copied().collect();
        let tail = String::from_utf8_lossy(&tail);
        match kept.skipped {
            0 => format!("{head}{tail}"),
            n => format!("{head}\n[... {n} bytes left out ...]\n{tail}"),
        }
    }
}

impl Kept {
    fn push(&mut self, mut bytes: &[u8]) {
        let room = self.head_cap.saturating_sub(self.head.len());
        let to_head = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        bytes = &bytes[to_head..];
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(self.tail_cap);
        self.tail.drain(..over);
        self.skipped += over as u64;
    }

    fn total(&self) -> u64 {
        self.head.len() as u64 + self.tail.len() as u64 + self.skipped
    }
}

fn shorten(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_owned();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_head_and_the_tail_and_counts_the_rest() {
        let output = Output::new(6, 8);
        output.lock().push(b"usage: x\n");
        output
            .lock()
            .push(b"lots of noise\n".repeat(100).as_slice());
        output.lock().push(b"Error: boom\n");
        let report = output.report("standard error").unwrap_or_default();
        assert!(report.starts_with("standard error ("), "{report}");
        assert!(report.contains("usage:"), "{report}");
        assert!(report.ends_with("r: boom"), "{report}");
        assert_eq!(output.lock().total(), 9 + 1400 + 12);
        assert_eq!(output.last_line().as_deref(), Some("r: boom"));
    }

    #[test]
    fn the_last_line_is_the_last_with_text() {
        let output = Output::new(0, 1024);
        output
            .lock()
            .push(b"Traceback:\n  File x\nValueError: bad image\n\n  \n");
        assert_eq!(output.last_line().as_deref(), Some("ValueError: bad image"));
        assert_eq!(Output::new(0, 10).last_line(), None);
        let long = "x".repeat(2000);
        output.lock().push(long.as_bytes());
        let line = output.last_line().unwrap_or_default();
        assert!(
            line.len() <= MAX_LINE + 3 && line.ends_with("..."),
            "{line}"
        );
    }

    #[test]
    fn short_output_is_kept_whole() {
        let output = Output::new(4, 1024);
        output.lock().push(b"one\ntwo\n");
        assert_eq!(output.report("out").as_deref(), Some("out:\none\ntwo"));
        assert_eq!(Output::new(4, 4).report("out"), None);
    }

    #[test]
    fn output_that_is_json_is_the_result_and_other_text_a_string() {
        let output = Output::new(1024, 1024);
        output.lock().push(b"  {\"pages\": 3}\n");
        assert_eq!(output.as_result(), Some(serde_json::json!({"pages": 3})));
        let output = Output::new(1024, 1024);
        output.lock().push(b"done: 3 pages\n");
        assert_eq!(output.as_result(), Some(Value::from("done: 3 pages")));
        assert_eq!(Output::new(8, 8).as_result(), None);
    }

    #[test]
    fn a_long_output_is_a_string_that_fits_and_keeps_its_end() {
        let half = outsourced_core::MAX_RESULT_BYTES / 2;
        let output = Output::new(half, half);
        // Control bytes take six bytes each as JSON: kept whole, this would not fit.
        output.lock().push(&[1u8; 100_000]);
        output.lock().push(b"the end\n");
        let Some(Value::String(text)) = output.as_result() else {
            panic!("a string");
        };
        assert!(text.ends_with("the end"), "{}", &text[text.len() - 20..]);
        assert!(text.starts_with('\u{1}'), "its start is kept");
        assert!(text.contains("[...]"));
        assert!(check_result(&Value::String(text)).is_ok());
    }

    #[test]
    fn a_tail_report_keeps_only_the_last_bytes() {
        let output = Output::new(1024, 1024);
        output.lock().push(b"first\nsecond\nthird\n");
        assert_eq!(
            output.tail_report("out", 6).as_deref(),
            Some("out (its last 5 bytes):\nthird")
        );
        assert_eq!(
            output.tail_report("out", 100).as_deref(),
            Some("out:\nfirst\nsecond\nthird")
        );
    }
}
