//! What an instance advertises about one catalog command.

use super::param::ParamSpec;
use serde::{Deserialize, Serialize};

/// A command as advertised in the registry: enough for a client to build a form and for the
/// gateway to validate parameters and pick instances. Program and argv stay local.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    /// Channels on which this instance runs the command.
    pub channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// A command name: 1 to 64 characters of letters, digits, `_`, `-`, `.` or `:` (artisan-style
/// names like `cache:clear` are common), starting with a letter or digit.
pub fn check_command_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "command name '{}' is invalid: use 1 to 64 letters, digits, '_', '-', '.' or ':', starting with a letter or digit",
            name.chars().take(80).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names() {
        for ok in ["report", "cache:clear", "db.backup-1"] {
            assert!(check_command_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", "a;b", &"x".repeat(65)] {
            assert!(check_command_name(bad).is_err(), "{bad}");
        }
    }
}
