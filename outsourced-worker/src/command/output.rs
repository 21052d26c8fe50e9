//! What a handler wrote: the first and the last bytes of a stream, bounded whatever its length,
//! kept where the worker can read them even when a reader had to be given up on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

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
}
