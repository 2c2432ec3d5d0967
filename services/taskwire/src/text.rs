//! Text from a server, made safe for a terminal: no control character of it reaches the
//! screen, so no value can move the cursor, change colours or retitle the window.

/// `s` with every control character replaced by `?`.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(super::clean("ok\x1b[2Jgone\r\n"), "ok?[2Jgone??");
    }
}
