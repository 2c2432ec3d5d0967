//! Human output: aligned tables, colour only on a terminal (and never with `NO_COLOR`), and
//! text from the server cleaned of control characters so no value can drive the terminal.

use std::io::IsTerminal;
use taskwire_core::wire::JobState;

/// A terminal colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Green,
    Red,
    Yellow,
    Blue,
    Dim,
    Bold,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Red => "31",
            Colour::Yellow => "33",
            Colour::Blue => "36",
            Colour::Dim => "2",
            Colour::Bold => "1",
        }
    }
}

/// Whether stdout gets colour.
pub fn colour_on() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `text` in `colour` when `on`.
pub fn paint(text: &str, colour: Option<Colour>, on: bool) -> String {
    match colour {
        Some(c) if on => format!("\x1b[{}m{text}\x1b[0m", c.code()),
        _ => text.to_string(),
    }
}

/// The colour a job state is shown in.
pub fn state_colour(s: JobState) -> Colour {
    match s {
        JobState::Succeeded => Colour::Green,
        JobState::Running => Colour::Blue,
        JobState::Queued | JobState::Cancelled => Colour::Dim,
        JobState::Stopped | JobState::Killed => Colour::Yellow,
        JobState::Failed | JobState::TimedOut | JobState::Lost => Colour::Red,
    }
}

/// Server text made safe to print: control characters become `?`.
pub use crate::text::clean;

/// A table of cells, each with an optional colour.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<(String, Option<Colour>)>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<(String, Option<Colour>)>) {
        self.rows
            .push(cells.into_iter().map(|(t, c)| (clean(&t), c)).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, columns padded to their widest cell.
    pub fn render(&self, colour: bool) -> String {
        let n = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, (t, _)) in r.iter().enumerate().take(n) {
                width[i] = width[i].max(t.chars().count());
            }
        }
        let mut out = String::new();
        let line = |cells: Vec<(&str, Option<Colour>)>, out: &mut String| {
            let last = cells.len().saturating_sub(1);
            for (i, (t, c)) in cells.into_iter().enumerate() {
                out.push_str(&paint(t, c, colour));
                if i < last {
                    let pad = width[i] - t.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        };
        line(
            self.headers
                .iter()
                .map(|h| (*h, Some(Colour::Bold)))
                .collect(),
            &mut out,
        );
        for r in &self.rows {
            line(r.iter().map(|(t, c)| (t.as_str(), *c)).collect(), &mut out);
        }
        out
    }
}

/// A byte count for people: `512 B`, `3.4 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// How long ago `at` was, for people: `5s ago`, `3m ago`, `2h ago`, `4d ago`.
pub fn ago(at: chrono::DateTime<chrono::Utc>) -> String {
    let s = (chrono::Utc::now() - at).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// A duration for people: `850ms`, `12.3s`, `4m05s`, `2h03m`.
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_never_pass_control_characters() {
        let mut t = Table::new(&["ID", "USER"]);
        t.row(vec![("a".into(), None), ("\x1b[2Jevil".into(), None)]);
        t.row(vec![
            ("long-id".into(), Some(Colour::Red)),
            ("bob".into(), None),
        ]);
        assert_eq!(
            t.render(false),
            "ID       USER\na        ?[2Jevil\nlong-id  bob\n"
        );
        assert!(t.render(true).contains("\x1b[31mlong-id\x1b[0m"));
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
        assert_eq!(duration_ms(850), "850ms");
        assert_eq!(duration_ms(12_345), "12.3s");
        assert_eq!(duration_ms(245_000), "4m05s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
    }
}
