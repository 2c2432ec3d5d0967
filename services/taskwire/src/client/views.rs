//! `taskwire commands`, `instances`, `audit`, `whoami` and `login`.

use super::api::Api;
use super::conn::{self, ConnArgs, Output, Saved};
use super::jobs::print_json;
use super::table::{self, Colour, Table};
use crate::error::CliError;
use taskwire_core::catalog::{ParamKind, ParamSpec};
use taskwire_core::wire::api::{CommandView, Me};
use taskwire_core::wire::{AuditPage, InstanceInfo, InstanceStatus};

/// A parameter as `name:type[=default]`, `?` marking optional ones.
pub fn param_brief(p: &ParamSpec) -> String {
    let kind = match &p.kind {
        ParamKind::String { .. } => "string".to_string(),
        ParamKind::Integer { min, max } => match (min, max) {
            (Some(a), Some(b)) => format!("int {a}..{b}"),
            _ => "int".to_string(),
        },
        ParamKind::Enum { values } => values.join("|"),
        ParamKind::Boolean => "bool".to_string(),
        #[allow(unreachable_patterns)]
        _ => "value".to_string(),
    };
    let mut s = format!("{}:{kind}", p.name);
    if let Some(d) = &p.default {
        s.push_str(&format!(
            "={}",
            d.as_str().map_or_else(|| d.to_string(), str::to_string)
        ));
    } else if !p.required {
        s.push('?');
    }
    s
}

pub async fn commands(api: &Api) -> Result<u8, CliError> {
    let list: Vec<CommandView> = api.get("/api/v1/commands", &[]).await?;
    if api.conn.output == Output::Json {
        print_json(&list);
        return Ok(0);
    }
    if list.is_empty() {
        eprintln!("there is no command you may run (ask for a role that allows some)");
        return Ok(0);
    }
    let mut t = Table::new(&["COMMAND", "PARAMETERS", "WHERE", "DESCRIPTION"]);
    for c in &list {
        let hosts: Vec<&str> = c.instances.iter().map(|i| i.hostname.as_str()).collect();
        t.row(vec![
            (c.name.clone(), Some(Colour::Bold)),
            (
                c.params
                    .iter()
                    .map(param_brief)
                    .collect::<Vec<_>>()
                    .join(" "),
                None,
            ),
            (
                format!("{} ({})", c.channels.join(","), hosts.join(",")),
                None,
            ),
            (c.description.clone(), Some(Colour::Dim)),
        ]);
    }
    print!("{}", t.render(table::colour_on()));
    Ok(0)
}

pub async fn instances(api: &Api) -> Result<u8, CliError> {
    let list: Vec<InstanceInfo> = api.get("/api/v1/instances", &[]).await?;
    if api.conn.output == Output::Json {
        print_json(&list);
        return Ok(0);
    }
    if list.is_empty() {
        eprintln!("no instance is registered (is an executor running?)");
        return Ok(0);
    }
    let mut t = Table::new(&[
        "GUID",
        "HOST",
        "CHANNELS",
        "SLOTS",
        "JOBS",
        "MEMORY",
        "STATUS",
        "HEARTBEAT",
    ]);
    for i in &list {
        let jobs_mem: u64 = i.jobs.iter().filter_map(|j| j.rss_bytes).sum();
        let (status, colour) = match i.status {
            InstanceStatus::Serving => ("serving", Colour::Green),
            InstanceStatus::Draining => ("draining", Colour::Yellow),
        };
        t.row(vec![
            (i.guid.to_string(), None),
            (i.hostname.clone(), None),
            (i.channels.join(","), None),
            (format!("{}/{}", i.slots.used, i.slots.total), None),
            (i.jobs.len().to_string(), None),
            (
                format!(
                    "{} jobs, {} executor",
                    table::bytes(jobs_mem),
                    i.executor_rss_bytes
                        .map(table::bytes)
                        .unwrap_or_else(|| "?".into())
                ),
                None,
            ),
            (status.to_string(), Some(colour)),
            (table::ago(i.heartbeat_at), None),
        ]);
    }
    print!("{}", t.render(table::colour_on()));
    Ok(0)
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    /// `verify` reads the audit database directly instead of listing through the server.
    #[command(subcommand)]
    pub local: Option<crate::audit_verify::AuditCommand>,
    /// Only this user.
    #[arg(long)]
    actor: Option<String>,
    /// An action (jobs.kill) or a family ending with a dot (jobs.).
    #[arg(long)]
    action: Option<String>,
    /// Only this target (a job id, a command name).
    #[arg(long)]
    target: Option<String>,
    /// Only denied requests.
    #[arg(long, conflicts_with = "allowed")]
    denied: bool,
    /// Only allowed requests.
    #[arg(long)]
    allowed: bool,
    /// At or after this instant (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Before this instant (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// How many entries (1 to 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    cursor: Option<String>,
}

pub async fn audit(api: &Api, a: AuditArgs) -> Result<u8, CliError> {
    let mut q = super::api::query(
        a.limit,
        &[
            ("actor", &a.actor),
            ("action", &a.action),
            ("target", &a.target),
            ("since", &a.since),
            ("until", &a.until),
            ("cursor", &a.cursor),
        ],
    );
    if a.denied {
        q.push(("allowed", "false".into()));
    } else if a.allowed {
        q.push(("allowed", "true".into()));
    }
    let page: AuditPage = api.get("/api/v1/audit", &q).await?;
    if api.conn.output == Output::Json {
        print_json(&page);
        return Ok(0);
    }
    let mut t = Table::new(&["TIME", "ACTOR", "ACTION", "TARGET", "DECISION", "REASON"]);
    for e in &page.entries {
        t.row(vec![
            (
                e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                None,
            ),
            (e.actor.clone().unwrap_or_else(|| "-".into()), None),
            (e.action.clone(), None),
            (e.target.clone().unwrap_or_default(), None),
            if e.allowed {
                ("allowed".into(), Some(Colour::Green))
            } else {
                ("denied".into(), Some(Colour::Red))
            },
            (e.reason.clone(), Some(Colour::Dim)),
        ]);
    }
    if t.is_empty() {
        eprintln!("no audit entries match");
    } else {
        print!("{}", t.render(table::colour_on()));
    }
    if let Some(n) = page.next {
        eprintln!("more: add --cursor {n}");
    }
    Ok(0)
}

pub async fn whoami(api: &Api) -> Result<u8, CliError> {
    let me: Me = api.get("/api/v1/me", &[]).await?;
    if api.conn.output == Output::Json {
        print_json(&me);
        return Ok(0);
    }
    let on = table::colour_on();
    println!(
        "user:        {}",
        table::paint(&table::clean(&me.user), Some(Colour::Bold), on)
    );
    println!("roles:       {}", table::clean(&me.roles.join(", ")));
    println!("super user:  {}", if me.super_user { "yes" } else { "no" });
    let perms: Vec<&str> = me.permissions.iter().map(|p| p.as_str()).collect();
    println!("permissions: {}", perms.join(", "));
    println!("server:      {}", api.conn.url);
    Ok(0)
}

/// Reads one line from stdin; on a terminal without echoing it (restored on every path).
fn read_secret(prompt: &str) -> Result<String, CliError> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Usage(format!("cannot read the token from stdin: {e}")))?;
        return Ok(line.trim().to_string());
    }
    read_at_terminal(&stdin, prompt)
}

/// The terminal prompt: echo, line editing and signals off while the token is typed, so the
/// interrupt key arrives as a key (and ends the prompt with the terminal restored) rather
/// than as a signal that would leave it without echo. The terminal's own erase, kill-line,
/// end-of-file and interrupt keys keep their meaning; other control keys are ignored.
fn read_at_terminal(stdin: &std::io::Stdin, prompt: &str) -> Result<String, CliError> {
    use nix::sys::termios::{LocalFlags, SpecialCharacterIndices as Cc, tcgetattr};
    use std::io::Read;
    let saved = tcgetattr(stdin)
        .map_err(|e| CliError::Usage(format!("cannot set up the terminal: {e}")))?;
    // 0 marks a key the terminal has switched off
    let key = |c: Cc| Some(saved.control_chars[c as usize]).filter(|k| *k != 0);
    let (intr, erase, kill, eof) = (
        key(Cc::VINTR),
        key(Cc::VERASE),
        key(Cc::VKILL),
        key(Cc::VEOF),
    );
    let mut quiet = saved.clone();
    quiet
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
    quiet.control_chars[Cc::VMIN as usize] = 1;
    quiet.control_chars[Cc::VTIME as usize] = 0;
    // Restored when this returns, however it returns (a panic included).
    let _restore = TermRestore::set(stdin, saved, &quiet)?;
    // Asked only once nothing typed can show.
    eprint!("{prompt}");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let outcome = loop {
        match stdin.lock().read(&mut byte) {
            Ok(0) => break Ok(()),
            Ok(_) => match byte[0] {
                b'\r' | b'\n' => break Ok(()),
                b if Some(b) == intr => {
                    break Err(CliError::Interrupted(
                        "login cancelled; nothing was saved".into(),
                    ));
                }
                b if Some(b) == eof => {
                    if line.is_empty() {
                        break Ok(());
                    }
                }
                b if Some(b) == erase || b == 0x7f || b == 0x08 => {
                    // one character, however many bytes it took
                    while line.pop().is_some_and(|b| b & 0xC0 == 0x80) {}
                }
                b if Some(b) == kill => line.clear(),
                b if b < 0x20 => {}
                b => line.push(b),
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                break Err(CliError::Usage(format!(
                    "cannot read the token from the terminal: {e}"
                )));
            }
        }
    };
    eprintln!();
    outcome?;
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

/// Puts a terminal's settings back when dropped.
struct TermRestore<'a> {
    stdin: &'a std::io::Stdin,
    saved: nix::sys::termios::Termios,
}

impl<'a> TermRestore<'a> {
    fn set(
        stdin: &'a std::io::Stdin,
        saved: nix::sys::termios::Termios,
        now: &nix::sys::termios::Termios,
    ) -> Result<Self, CliError> {
        nix::sys::termios::tcsetattr(stdin, nix::sys::termios::SetArg::TCSANOW, now)
            .map_err(|e| CliError::Usage(format!("cannot set up the terminal: {e}")))?;
        Ok(Self { stdin, saved })
    }
}

impl Drop for TermRestore<'_> {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            self.stdin,
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

/// `taskwire login`: checks the URL and token against the server, then saves them (0600).
pub async fn login(conn_args: &ConnArgs) -> Result<u8, CliError> {
    let mut args = conn_args.clone();
    if args.token.as_deref() == Some("-") || args.token.is_none() {
        args.token = Some(read_secret("token: ")?);
    }
    let conn = conn::Conn {
        url: conn::normalize_url(args.url.as_deref().unwrap_or(conn::DEFAULT_URL))?,
        token: args.token.clone().unwrap_or_default(),
        output: args.output,
    };
    let api = Api::new(conn.clone())?;
    let me: Me = api.get("/api/v1/me", &[]).await?;
    let path = conn::save(&Saved {
        url: Some(conn.url.clone()),
        token: Some(conn.token),
    })?;
    println!(
        "logged in to {} as {} (saved in {}, readable by you only)",
        conn.url,
        table::clean(&me.user),
        path.display()
    );
    Ok(0)
}
