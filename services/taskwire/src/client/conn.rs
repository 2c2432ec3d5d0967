//! Which server and token the client uses: `--url` / `--token`, else `TASKWIRE_URL` /
//! `TASKWIRE_TOKEN`, else the file `taskwire login` wrote, else (URL only) the address
//! `taskwire up` listens on by default.

use crate::error::CliError;
use serde::Deserialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The address `taskwire up` serves by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables and text for people (colour on a terminal).
    Human,
    /// JSON for scripts: the API's own documents.
    Json,
}

/// Connection options shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// The taskwire server (default: the saved login, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "TASKWIRE_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// The API token (default: the saved login).
    #[arg(long, global = true, env = "TASKWIRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// human (default) or json.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "human")]
    pub output: Output,
}

/// What `taskwire login` keeps.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Saved {
    pub url: Option<String>,
    pub token: Option<String>,
}

/// A resolved connection.
#[derive(Debug, Clone)]
pub struct Conn {
    pub url: String,
    pub token: String,
    pub output: Output,
}

/// Where the login file lives: `TASKWIRE_CLI_CONFIG`, else
/// `$XDG_CONFIG_HOME/taskwire/cli.toml`, else `~/.config/taskwire/cli.toml`.
pub fn login_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TASKWIRE_CLI_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("taskwire").join("cli.toml"))
}

/// Reads the login file; absent is empty, unreadable or invalid is an error naming it.
pub fn load_saved() -> Result<Saved, CliError> {
    let Some(path) = login_file() else {
        return Ok(Saved::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            CliError::Usage(format!(
                "the login file {} is not valid: {e}. Fix it or run `taskwire login` again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved::default()),
        Err(e) => Err(CliError::Usage(format!(
            "cannot read the login file {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the login file readable by its owner only (mode 0600, also when it existed).
pub fn save(saved: &Saved) -> Result<PathBuf, CliError> {
    let path = login_file().ok_or_else(|| {
        CliError::Usage("no home directory: set TASKWIRE_CLI_CONFIG to a file path".into())
    })?;
    let fail = |e: std::io::Error| CliError::StateDir {
        path: path.clone(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // JSON string escapes are valid TOML basic-string escapes.
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let mut text = String::from("# written by `taskwire login`; keep it private\n");
    if let Some(u) = &saved.url {
        text.push_str(&format!("url = {}\n", quote(u)));
    }
    if let Some(t) = &saved.token {
        text.push_str(&format!("token = {}\n", quote(t)));
    }
    // Written beside it, then renamed over it: a crash leaves the old file or the new one.
    // The name is unguessable and the file must be new (never a link someone planted).
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(path)
}

impl ConnArgs {
    /// Flags and environment first, then the login file, then the default URL.
    pub fn resolve(&self) -> Result<Conn, CliError> {
        let saved = if self.url.is_some() && self.token.is_some() {
            Saved::default()
        } else {
            load_saved()?
        };
        let saved_url = saved.url.as_deref().map(normalize_url).transpose()?;
        let url = match &self.url {
            Some(u) => normalize_url(u)?,
            None => saved_url.clone().unwrap_or_else(|| DEFAULT_URL.to_string()),
        };
        // The saved token goes only to the server it was saved for.
        let saved_token = saved
            .token
            .filter(|_| saved_url.as_deref() == Some(url.as_str()));
        let token = self.token.clone().or(saved_token).ok_or_else(|| {
            CliError::Usage(format!(
                "no API token for {url}: pass --token, set TASKWIRE_TOKEN, or run `taskwire login --url {url}` \
                 (`taskwire up` prints an admin token; `taskwire token` creates others)"
            ))
        })?;
        Ok(Conn {
            url,
            token: token.trim().to_string(),
            output: self.output,
        })
    }
}

/// `http(s)://host[:port][/prefix]` without a trailing slash or `/api/v1`.
pub fn normalize_url(raw: &str) -> Result<String, CliError> {
    let u = raw.trim().trim_end_matches('/');
    let u = u.strip_suffix("/api/v1").unwrap_or(u);
    if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() <= "https://".len() {
        return Err(CliError::Usage(format!(
            "the server URL '{raw}' is not valid: give it as http://host:port or https://host"
        )));
    }
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_and_bad_ones_explained() {
        assert_eq!(
            normalize_url("http://127.0.0.1:8080/api/v1/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_url("https://tw.example.com").unwrap(),
            "https://tw.example.com"
        );
        let e = normalize_url("127.0.0.1:8080").unwrap_err().to_string();
        assert!(e.contains("http://host:port"), "{e}");
    }

    #[test]
    fn the_login_file_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("cli.toml");
        // SAFETY: this test alone reads or writes TASKWIRE_CLI_CONFIG.
        unsafe { std::env::set_var("TASKWIRE_CLI_CONFIG", &path) };
        let saved = Saved {
            url: Some("http://127.0.0.1:1".into()),
            token: Some("tok\"en\u{1}".into()),
        };
        assert_eq!(save(&saved).unwrap(), path);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = load_saved().unwrap();
        assert_eq!(back.token, saved.token);
        assert_eq!(back.url, saved.url);
        unsafe { std::env::remove_var("TASKWIRE_CLI_CONFIG") };
    }
}
