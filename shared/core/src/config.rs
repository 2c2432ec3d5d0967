//! Layered configuration: built-in defaults, then a TOML file, then `TASKWIRE_` environment
//! variables (`__` separates nesting: `TASKWIRE_EXECUTOR__SLOTS=8` sets `[executor] slots`).
//! Unknown keys are errors, so a typo never silently falls back to a default.
//!
//! One file configures every service: top-level keys shared by all, and one section per
//! service, which that service deserializes strictly with [`Settings::section`].

use crate::error::{Error, Result};
use crate::topology::TopologyConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Environment variables starting with `TASKWIRE_` that are not configuration keys.
pub const NON_CONFIG_ENV: &[&str] = &[
    "TASKWIRE_CONFIG",
    "TASKWIRE_LOG",
    "TASKWIRE_NATS_SERVER",
    "TASKWIRE_URL",
    "TASKWIRE_TOKEN",
    "TASKWIRE_CLI_CONFIG",
    "TASKWIRE_ALLOWED_COMMANDS",
    "TASKWIRE_TEST_POSTGRES",
];

/// The service sections a config file may hold.
pub const SECTIONS: &[&str] = &["executor", "gateway", "audit", "kill_broker", "scheduler"];

/// The whole configuration: shared keys, and each service's raw section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// NATS server URL(s), comma separated.
    #[serde(default = "default_nats_url")]
    pub nats_url: String,
    /// This process's NATS key file (`<role>.nk` from `taskwire nats init`, or a `.creds`
    /// file). Each service has its own; a taskwire NATS refuses a connection without one.
    #[serde(default)]
    pub nats_credentials: Option<PathBuf>,
    /// Optional name-space prefix for every subject, stream and bucket.
    #[serde(default)]
    pub prefix: String,
    /// Where services keep local state (instance GUID, SQLite file, nats-server store).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Admin token used by `taskwire up` instead of generating one.
    #[serde(default)]
    pub admin_token: Option<String>,
    #[serde(default)]
    pub topology: TopologyConfig,
    #[serde(default)]
    executor: Option<toml::Value>,
    #[serde(default)]
    gateway: Option<toml::Value>,
    #[serde(default)]
    audit: Option<toml::Value>,
    #[serde(default)]
    kill_broker: Option<toml::Value>,
    #[serde(default)]
    scheduler: Option<toml::Value>,
}

fn default_nats_url() -> String {
    crate::nats::DEFAULT_URL.to_string()
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".taskwire")
}

impl Settings {
    /// Loads from `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        Self::load_from(file, std::env::vars())
    }

    /// Loads from `file` (if any) and the given environment (tests pass their own).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut root = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
                path: path.to_path_buf(),
                source,
            })?;
            root = text
                .parse::<toml::Table>()
                .map_err(|e| Error::Config(format!("{} is not valid TOML: {e}", path.display())))?;
        }
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("TASKWIRE_") && !NON_CONFIG_ENV.contains(&k.as_str()))
            .collect();
        vars.sort();
        for (key, raw) in vars {
            let path: Vec<String> = key["TASKWIRE_".len()..]
                .split("__")
                .map(|p| p.to_ascii_lowercase())
                .collect();
            set_path(&mut root, &path, env_value(&raw))
                .map_err(|e| Error::Config(format!("environment variable {key}: {e}")))?;
        }
        Settings::deserialize(toml::Value::Table(root)).map_err(|e| Error::Config(format!("{e}")))
    }

    /// Deserializes one service's section strictly (missing section = all defaults).
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T> {
        let raw = match name {
            "executor" => &self.executor,
            "gateway" => &self.gateway,
            "audit" => &self.audit,
            "kill_broker" => &self.kill_broker,
            "scheduler" => &self.scheduler,
            _ => return Err(Error::Config(format!("no config section named [{name}]"))),
        };
        match raw {
            None => Ok(T::default()),
            Some(v) => T::deserialize(v.clone())
                .map_err(|e| Error::Config(format!("in section [{name}]: {e}"))),
        }
    }

    /// The name space described by `prefix`.
    pub fn namespace(&self) -> Result<crate::Namespace> {
        crate::Namespace::with_prefix(&self.prefix)
    }
}

/// An environment value is TOML when it is a boolean, a number, an array, an inline table or a
/// quoted string; anything else is taken as a plain string.
fn env_value(raw: &str) -> toml::Value {
    let t = raw.trim();
    let looks_typed = t == "true"
        || t == "false"
        || t.starts_with('[')
        || t.starts_with('{')
        || t.starts_with('"')
        || t.parse::<i64>().is_ok();
    if looks_typed
        && let Ok(table) = format!("v = {t}").parse::<toml::Table>()
        && let Some(v) = table.get("v")
    {
        return v.clone();
    }
    toml::Value::String(raw.to_string())
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("'{first}' is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Exec {
        slots: u32,
        channels: Vec<String>,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_file_and_nests_with_double_underscore() {
        let mut f = tempfile_like();
        writeln!(
            f.1,
            "nats_url = \"nats://a:1\"\n[executor]\nslots = 2\nchannels = [\"x\"]"
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&f.0),
            env(&[
                ("TASKWIRE_NATS_URL", "nats://b:2"),
                ("TASKWIRE_EXECUTOR__SLOTS", "9"),
                ("TASKWIRE_NATS_SERVER", "/ignored"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(s.nats_url, "nats://b:2");
        let e: Exec = s.section("executor").unwrap();
        assert_eq!(
            e,
            Exec {
                slots: 9,
                channels: vec!["x".into()]
            }
        );
        let _ = std::fs::remove_file(&f.0);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = Settings::load_from(None, env(&[("TASKWIRE_NATS_ULR", "x")])).unwrap_err();
        assert!(e.to_string().contains("nats_ulr"), "{e}");
        let s = Settings::load_from(None, env(&[("TASKWIRE_EXECUTOR__SLOTZ", "1")])).unwrap();
        let e = s.section::<Exec>("executor").unwrap_err();
        assert!(e.to_string().contains("slotz"), "{e}");
        assert!(e.to_string().contains("[executor]"), "{e}");
    }

    #[test]
    fn quoted_env_values_stay_strings() {
        let s = Settings::load_from(None, env(&[("TASKWIRE_ADMIN_TOKEN", "\"12345\"")])).unwrap();
        assert_eq!(s.admin_token.as_deref(), Some("12345"));
        let s = Settings::load_from(None, env(&[("TASKWIRE_ADMIN_TOKEN", "tw_abc")])).unwrap();
        assert_eq!(s.admin_token.as_deref(), Some("tw_abc"));
    }

    fn tempfile_like() -> (PathBuf, std::fs::File) {
        let p = std::env::temp_dir().join(format!("tw-config-{}.toml", uuid::Uuid::new_v4()));
        let f = std::fs::File::create(&p).unwrap();
        (p, f)
    }
}
