//! A Server-Sent Events reader: bytes in, whole events out (`event`, `data`, `id`), comments
//! (keep-alives) skipped, lines split on LF or CRLF across any chunk boundary.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Accumulates bytes and yields complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data || !self.current.event.is_empty() {
                    let mut ev = std::mem::take(&mut self.current);
                    if ev.event.is_empty() {
                        ev.event = "message".into();
                    }
                    out.push(ev);
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.current.event = value.to_string(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                "id" => self.current.id = Some(value.to_string()),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_any_split_and_keepalives_are_skipped() {
        let text = b": keep-alive\n\nevent: chunk\nid: 1\ndata: {\"seq\":1}\n\nevent: end\r\ndata: a\r\ndata: b\r\n\r\n";
        let whole = SseParser::default().feed(text);
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    event: "chunk".into(),
                    data: "{\"seq\":1}".into(),
                    id: Some("1".into())
                },
                SseEvent {
                    event: "end".into(),
                    data: "a\nb".into(),
                    id: None
                },
            ]
        );
        for split in 1..text.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&text[..split]);
            got.extend(p.feed(&text[split..]));
            assert_eq!(got, whole, "split at {split}");
        }
    }
}
