//! The instance's local command catalog: what may run here, how, and with which parameters.
//!
//! The catalog is written by the server's administrator. Parameters are substituted into argv
//! elements only; a shell is used only for a command whose author wrote `shell = true` and a
//! `script`, and even then parameters reach the script as environment variables and positional
//! arguments, never spliced into the script text.

use crate::error::{ExecutorError, Result};
use nix::sys::signal::Signal;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use taskwire_core::catalog::{
    CommandInfo, ParamKind, ParamSpec, ParamValue, check_command_name, validate_params,
};
use taskwire_core::units;

/// The kernel's limit on one argv element (MAX_ARG_STRLEN, 32 pages).
pub const MAX_ARG_LEN: usize = 131_072;

/// Default cap on the stored output of one job.
pub const DEFAULT_OUTPUT_CAP: u64 = 100 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    commands: BTreeMap<String, CommandFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandFile {
    #[serde(default)]
    description: String,
    program: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    shell: bool,
    script: Option<String>,
    workdir: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    env_allow: Vec<String>,
    timeout: Option<String>,
    channels: Option<Vec<String>>,
    output_cap: Option<toml::Value>,
    stop: Option<StopFile>,
    kill: Option<Vec<StepFile>>,
    #[serde(default)]
    params: Vec<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopFile {
    signal: Option<String>,
    grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    signal: String,
    wait: Option<String>,
}

/// One piece of an argv element template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    /// `{name}`: the parameter's value.
    Param(String),
    /// `{name?text}`: `text` when the boolean parameter is true, else the element is dropped.
    Flag(String, String),
}

/// One signal of a termination ladder and how long to wait for the tree to end after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LadderStep {
    pub signal: Signal,
    pub wait: Duration,
}

/// A command the instance can run.
#[derive(Debug, Clone)]
pub struct Command {
    pub name: String,
    pub description: String,
    program: PathBuf,
    template: Vec<Vec<Piece>>,
    /// The script for `shell = true` commands (run as `/bin/sh -c script name args...`).
    script: Option<String>,
    pub workdir: Option<PathBuf>,
    pub env: BTreeMap<String, String>,
    pub env_allow: Vec<String>,
    pub timeout: Option<Duration>,
    pub channels: Vec<String>,
    pub output_cap: u64,
    /// `stop`: the stop signal, then SIGKILL after the grace period.
    pub stop: Vec<LadderStep>,
    /// `kill`: the escalating ladder (default SIGINT, SIGTERM, SIGKILL).
    pub kill: Vec<LadderStep>,
    pub params: Vec<ParamSpec>,
}

/// A validated invocation, ready to spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The full argv, `argv[0]` being the program path.
    pub argv: Vec<String>,
    /// The validated parameters as JSON (for `TASKWIRE_PARAMS`).
    pub params_json: String,
    /// Parameter values for `TASKWIRE_PARAM_<NAME>` variables (shell commands only).
    pub param_env: Vec<(String, String)>,
}

impl Command {
    /// Validates `params` and renders the argv. Errors name the parameter and the rule.
    pub fn invocation(
        &self,
        params: &BTreeMap<String, serde_json::Value>,
    ) -> std::result::Result<Invocation, String> {
        let values = validate_params(&self.params, params).map_err(|e| e.to_string())?;
        let mut argv = Vec::with_capacity(self.template.len() + 3);
        argv.push(self.program.to_string_lossy().into_owned());
        if let Some(script) = &self.script {
            argv.push("-c".into());
            argv.push(script.clone());
            argv.push(self.name.clone());
        }
        'element: for element in &self.template {
            let mut out = String::new();
            for piece in element {
                match piece {
                    Piece::Lit(s) => out.push_str(s),
                    Piece::Param(p) => match values.get(p) {
                        Some(v) => out.push_str(&v.render()),
                        None => continue 'element,
                    },
                    Piece::Flag(p, text) => match values.get(p) {
                        Some(ParamValue::Bool(true)) => out.push_str(text),
                        _ => continue 'element,
                    },
                }
            }
            argv.push(out);
        }
        let json: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        let param_env = if self.script.is_some() {
            values
                .iter()
                .map(|(k, v)| {
                    (
                        format!("TASKWIRE_PARAM_{}", k.to_ascii_uppercase()),
                        v.render(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Invocation {
            argv,
            params_json: serde_json::Value::Object(json).to_string(),
            param_env,
        })
    }

    /// What the registry advertises about this command.
    pub fn info(&self) -> CommandInfo {
        CommandInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            params: self.params.clone(),
            channels: self.channels.clone(),
            timeout_secs: self.timeout.map(|t| t.as_secs()),
        }
    }
}

/// The whole catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    commands: BTreeMap<String, Command>,
}

impl Catalog {
    /// Reads and checks a catalog file. `served` are the instance's channels: a command with no
    /// `channels` runs on all of them, and a command may only name served channels.
    pub fn load(path: &Path, served: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ExecutorError::Catalog {
            path: path.to_path_buf(),
            message: format!(
                "cannot read it: {e}. Point [executor] catalog (or --catalog) at a catalog file"
            ),
        })?;
        Self::parse(&text, served).map_err(|message| ExecutorError::Catalog {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses catalog TOML text.
    pub fn parse(text: &str, served: &[String]) -> std::result::Result<Self, String> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut commands = BTreeMap::new();
        for (name, c) in file.commands {
            let cmd =
                build_command(&name, c, served).map_err(|e| format!("command '{name}': {e}"))?;
            commands.insert(name, cmd);
        }
        Ok(Self { commands })
    }

    /// The command called `name`.
    pub fn get(&self, name: &str) -> Option<&Command> {
        self.commands.get(name)
    }

    /// Every command, by name.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.commands.values()
    }

    /// The advertised form of the catalog.
    pub fn infos(&self) -> Vec<CommandInfo> {
        self.commands.values().map(Command::info).collect()
    }
}

fn build_command(
    name: &str,
    c: CommandFile,
    served: &[String],
) -> std::result::Result<Command, String> {
    check_command_name(name)?;
    let mut params = Vec::new();
    let mut seen = BTreeSet::new();
    for raw in c.params {
        let spec: ParamSpec = raw.clone().try_into().map_err(|e: toml::de::Error| {
            format!(
                "parameter {}: {}",
                raw.get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("(unnamed)"),
                e.message()
            )
        })?;
        check_param_spec(&spec, &raw)?;
        if !seen.insert(spec.name.clone()) {
            return Err(format!("parameter '{}' is declared twice", spec.name));
        }
        params.push(spec);
    }
    let (program, script) = match (c.shell, c.program, c.script) {
        (false, Some(p), None) => (resolve_program(&p)?, None),
        (true, None, Some(s)) => (PathBuf::from("/bin/sh"), Some(s)),
        (false, _, Some(_)) => {
            return Err("'script' needs shell = true (or use program and args instead)".into());
        }
        (true, _, None) => return Err("shell = true needs a 'script'".into()),
        (true, Some(_), Some(_)) => {
            return Err("a shell command has a 'script', not a 'program'".into());
        }
        (false, None, None) => {
            return Err("needs a 'program' (absolute path or a name on PATH)".into());
        }
    };
    let template = c
        .args
        .iter()
        .map(|a| parse_template(a, &params))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let channels = match c.channels {
        None => served.to_vec(),
        Some(list) => {
            for ch in &list {
                if !served.contains(ch) {
                    return Err(format!(
                        "channel '{ch}' is not served by this instance (served: {})",
                        served.join(", ")
                    ));
                }
            }
            list
        }
    };
    for k in c.env.keys().chain(c.env_allow.iter()) {
        if k.is_empty() || k.contains('=') || k.contains('\0') || k.starts_with("TASKWIRE_") {
            return Err(format!(
                "environment name '{k}' is not allowed (no '=', no NUL, no TASKWIRE_ prefix)"
            ));
        }
    }
    let dur = |s: &Option<String>, what: &str| -> std::result::Result<Option<Duration>, String> {
        s.as_deref()
            .map(units::parse_duration)
            .transpose()
            .map_err(|e| format!("{what}: {e}"))
    };
    let output_cap = match c.output_cap {
        None => DEFAULT_OUTPUT_CAP,
        Some(toml::Value::Integer(i)) if i > 0 => i as u64,
        Some(toml::Value::String(s)) => {
            units::parse_size(&s).map_err(|e| format!("output_cap: {e}"))?
        }
        Some(other) => {
            return Err(format!(
                "output_cap: {} is not a size such as \"100MiB\"",
                other.type_str()
            ));
        }
    };
    let stop_signal = match c.stop.as_ref().and_then(|s| s.signal.as_deref()) {
        Some(s) => parse_signal(s)?,
        None => Signal::SIGTERM,
    };
    let grace = dur(&c.stop.as_ref().and_then(|s| s.grace.clone()), "stop.grace")?
        .unwrap_or(Duration::from_secs(10));
    let stop = vec![
        LadderStep {
            signal: stop_signal,
            wait: grace,
        },
        LadderStep {
            signal: Signal::SIGKILL,
            wait: Duration::from_secs(5),
        },
    ];
    let kill = match c.kill {
        None => vec![
            LadderStep {
                signal: Signal::SIGINT,
                wait: Duration::from_secs(2),
            },
            LadderStep {
                signal: Signal::SIGTERM,
                wait: Duration::from_secs(5),
            },
            LadderStep {
                signal: Signal::SIGKILL,
                wait: Duration::from_secs(5),
            },
        ],
        Some(steps) => {
            let mut out = Vec::new();
            for s in steps {
                out.push(LadderStep {
                    signal: parse_signal(&s.signal)?,
                    wait: dur(&s.wait, "kill.wait")?.unwrap_or(Duration::from_secs(5)),
                });
            }
            if out.last().map(|s| s.signal) != Some(Signal::SIGKILL) {
                out.push(LadderStep {
                    signal: Signal::SIGKILL,
                    wait: Duration::from_secs(5),
                });
            }
            out
        }
    };
    Ok(Command {
        name: name.to_string(),
        description: c.description,
        program,
        template,
        script,
        workdir: c.workdir,
        env: c.env,
        env_allow: c.env_allow,
        timeout: dur(&c.timeout, "timeout")?,
        channels,
        output_cap,
        stop,
        kill,
        params,
    })
}

fn check_param_spec(spec: &ParamSpec, raw: &toml::Value) -> std::result::Result<(), String> {
    let n = &spec.name;
    let ok_name = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok_name {
        return Err(format!(
            "parameter name '{n}' is invalid: use lowercase letters, digits and '_'"
        ));
    }
    // serde cannot deny unknown keys next to a flattened enum, so check them here.
    let allowed: &[&str] = match &spec.kind {
        ParamKind::String { .. } => &["pattern", "max_len", "allow_leading_dash", "multiline"],
        ParamKind::Integer { .. } => &["min", "max"],
        ParamKind::Enum { values } => {
            if values.is_empty() {
                return Err(format!("parameter '{n}': an enum needs at least one value"));
            }
            &["values"]
        }
        ParamKind::Boolean => &[],
    };
    if let Some(table) = raw.as_table() {
        for key in table.keys() {
            let common = ["name", "description", "required", "default", "type"];
            if !common.contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
                return Err(format!("parameter '{n}': unknown key '{key}'"));
            }
        }
    }
    if let ParamKind::String {
        pattern, max_len, ..
    } = &spec.kind
    {
        if let Some(p) = pattern {
            taskwire_core::catalog::compile_pattern(p)
                .map_err(|e| format!("parameter '{n}' {e}"))?;
        }
        if max_len.is_some_and(|m| m > MAX_ARG_LEN) {
            return Err(format!(
                "parameter '{n}': max_len may be at most {MAX_ARG_LEN} (the kernel's limit for one argument)"
            ));
        }
    }
    if let Some(d) = &spec.default {
        validate_params(
            std::slice::from_ref(spec),
            &BTreeMap::from([(n.clone(), d.clone())]),
        )
        .map_err(|e| format!("default value fails its own rule: {e}"))?;
    }
    Ok(())
}

fn parse_template(arg: &str, params: &[ParamSpec]) -> std::result::Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => inner.push(ch),
                        None => return Err(format!("argument '{arg}' has an unclosed '{{'")),
                    }
                }
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                let (name, flag) = match inner.split_once('?') {
                    Some((n, text)) => (n.to_string(), Some(text.to_string())),
                    None => (inner.clone(), None),
                };
                let spec = params.iter().find(|p| p.name == name).ok_or_else(|| {
                    format!("argument '{arg}' uses '{{{name}}}', which is not a declared parameter")
                })?;
                match flag {
                    Some(text) => {
                        if spec.kind != ParamKind::Boolean {
                            return Err(format!(
                                "argument '{arg}': '{{{name}?...}}' needs a boolean parameter"
                            ));
                        }
                        pieces.push(Piece::Flag(name, text));
                    }
                    None => pieces.push(Piece::Param(name)),
                }
            }
            '}' => return Err(format!("argument '{arg}' has a stray '}}' (write '}}}}')")),
            other => lit.push(other),
        }
    }
    if !lit.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

fn resolve_program(p: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        return Ok(path);
    }
    if p.contains('/') {
        return Err(format!(
            "program '{p}' must be an absolute path or a bare name on PATH"
        ));
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .map(|d| d.join(p))
        .find(|c| c.is_file())
        .ok_or_else(|| format!("program '{p}' is not on PATH; write its absolute path"))
}

/// Parses "SIGTERM", "TERM" or "15".
pub fn parse_signal(s: &str) -> std::result::Result<Signal, String> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("'{s}' is not a signal number"));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("'{s}' is not a signal name such as SIGTERM"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CAT: &str = r#"
[commands.greet]
description = "Say hello"
program = "/bin/echo"
args = ["hello", "{name}", "--times={times}", "{loud?--loud}", "{{literal}}"]
timeout = "30s"
output_cap = "1MiB"
kill = [{ signal = "TERM", wait = "1s" }]

[[commands.greet.params]]
name = "name"
type = "string"
pattern = "[a-z]+"
required = true

[[commands.greet.params]]
name = "times"
type = "integer"
min = 1
max = 3

[[commands.greet.params]]
name = "loud"
type = "boolean"

[commands.sh]
shell = true
script = 'echo "$TASKWIRE_PARAM_WHO" "$1"'
args = ["{who}"]

[[commands.sh.params]]
name = "who"
type = "string"
required = true
"#;

    fn served() -> Vec<String> {
        vec!["default".into()]
    }

    fn p(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn argv_is_rendered_per_element() {
        let cat = Catalog::parse(CAT, &served()).unwrap();
        let g = cat.get("greet").unwrap();
        let inv = g.invocation(&p(&[("name", json!("bob"))])).unwrap();
        assert_eq!(inv.argv, ["/bin/echo", "hello", "bob", "{literal}"]);
        let inv = g
            .invocation(&p(&[
                ("name", json!("bob")),
                ("times", json!(2)),
                ("loud", json!(true)),
            ]))
            .unwrap();
        assert_eq!(
            inv.argv,
            [
                "/bin/echo",
                "hello",
                "bob",
                "--times=2",
                "--loud",
                "{literal}"
            ]
        );
        assert_eq!(inv.params_json, r#"{"loud":true,"name":"bob","times":2}"#);
        assert_eq!(g.timeout, Some(Duration::from_secs(30)));
        assert_eq!(g.output_cap, 1 << 20);
        assert_eq!(
            g.kill.len(),
            2,
            "SIGKILL is appended to a ladder that lacks it"
        );
        assert_eq!(g.kill[1].signal, Signal::SIGKILL);
        let e = g
            .invocation(&p(&[("name", json!("bob; rm -rf /"))]))
            .unwrap_err();
        assert_eq!(e, "parameter 'name': must match the pattern [a-z]+");
    }

    #[test]
    fn shell_commands_get_params_as_data() {
        let cat = Catalog::parse(CAT, &served()).unwrap();
        let inv = cat
            .get("sh")
            .unwrap()
            .invocation(&p(&[("who", json!("$(touch /tmp/x)"))]))
            .unwrap();
        assert_eq!(
            inv.argv,
            [
                "/bin/sh",
                "-c",
                r#"echo "$TASKWIRE_PARAM_WHO" "$1""#,
                "sh",
                "$(touch /tmp/x)"
            ]
        );
        assert_eq!(
            inv.param_env,
            [(
                "TASKWIRE_PARAM_WHO".to_string(),
                "$(touch /tmp/x)".to_string()
            )]
        );
    }

    #[test]
    fn catalog_mistakes_are_reported_with_the_command() {
        let cases = [
            (
                "[commands.x]\nprogram = \"/bin/echo\"\nargs = [\"{nope}\"]",
                "not a declared parameter",
            ),
            (
                "[commands.x]\nprogram = \"/bin/echo\"\nbogus = 1",
                "unknown field",
            ),
            ("[commands.x]\nscript = \"echo\"", "needs shell = true"),
            (
                "[commands.x]\nprogram = \"/bin/echo\"\nchannels = [\"other\"]",
                "not served",
            ),
            (
                "[commands.x]\nprogram = \"no-such-program-anywhere\"",
                "not on PATH",
            ),
            (
                "[commands.x]\nprogram = \"/bin/echo\"\n[[commands.x.params]]\nname = \"a\"\ntype = \"string\"\nmaxlen = 3",
                "unknown key 'maxlen'",
            ),
            (
                "[commands.x]\nprogram = \"/bin/echo\"\n[[commands.x.params]]\nname = \"a\"\ntype = \"string\"\npattern = \"(\"",
                "invalid pattern",
            ),
            (
                "[commands.x]\nprogram = \"/bin/echo\"\nkill = [{signal = \"SIGNOPE\"}]",
                "not a signal",
            ),
            ("[commands.\"a b\"]\nprogram = \"/bin/echo\"", "invalid"),
        ];
        for (text, want) in cases {
            let e = Catalog::parse(text, &served()).unwrap_err();
            assert!(e.contains(want), "{text}\n=> {e}");
        }
    }

    #[test]
    fn signals_parse() {
        assert_eq!(parse_signal("SIGINT").unwrap(), Signal::SIGINT);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("SIGFOO").is_err());
    }
}
