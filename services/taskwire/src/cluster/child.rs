//! The processes of a local cluster, kept running the way `restart: unless-stopped` keeps a
//! compose service: one that exits (a crash, a `kill -9`) is started again after a delay, until
//! the cluster stops. One thread owns every process; each dies with it (parent-death signal),
//! so a killed `taskwire up --cluster` leaves nothing behind.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How to start one process.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Its name in the cluster (`nats-1`, `gateway-2`, ...).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where its standard output and error go (appended to across restarts).
    pub log: PathBuf,
    /// When it stops: lower stages stop first (the door before the workers, NATS last).
    pub stage: u8,
    /// What it serves, for the manifest (a URL), if anything.
    pub address: Option<String>,
}

/// One process as the manifest shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub name: String,
    /// Its pid while it runs.
    pub pid: Option<u32>,
    /// How many times it was started.
    pub starts: u32,
    pub log: PathBuf,
    pub address: Option<String>,
}

enum Msg {
    Start(Vec<Spec>, mpsc::Sender<Result<(), String>>),
    Stop,
}

/// The thread that owns the processes.
#[derive(Debug)]
pub struct Supervisor {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

struct Running {
    spec: Spec,
    child: Option<Child>,
    starts: u32,
    /// When to start it again after it exited.
    again_at: Option<Instant>,
}

impl Supervisor {
    /// Starts the thread; `changed` is called with every process's status whenever one
    /// starts or exits. A process that exits is started again `restart_after` later.
    pub fn new(
        restart_after: Duration,
        stop_grace: Duration,
        changed: impl Fn(&[Status]) + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cluster-supervisor".into())
            .spawn(move || supervise(rx, restart_after, stop_grace, changed))
            .ok();
        Self { tx, thread }
    }

    /// Starts these processes (in order) and keeps them running.
    pub fn start(&self, specs: Vec<Spec>) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Msg::Start(specs, tx))
            .map_err(|_| "the cluster's supervisor thread is gone".to_string())?;
        rx.recv()
            .map_err(|_| "the cluster's supervisor thread is gone".to_string())?
    }

    /// Stops every process, stage by stage (SIGTERM, then SIGKILL after the grace), and waits.
    pub fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn supervise(
    rx: mpsc::Receiver<Msg>,
    restart_after: Duration,
    stop_grace: Duration,
    changed: impl Fn(&[Status]),
) {
    let mut all: Vec<Running> = Vec::new();
    let report = |all: &[Running]| changed(&all.iter().map(status).collect::<Vec<_>>());
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Msg::Start(specs, done)) => {
                let mut result = Ok(());
                for spec in specs {
                    let mut r = Running {
                        spec,
                        child: None,
                        starts: 0,
                        again_at: None,
                    };
                    if let Err(e) = spawn(&mut r) {
                        result = Err(e);
                    }
                    all.push(r);
                }
                report(&all);
                let _ = done.send(result);
            }
            Ok(Msg::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                stop_all(&mut all, stop_grace);
                report(&all);
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let mut any = false;
        for r in &mut all {
            if let Some(c) = r.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                println!(
                    "cluster: {} (pid {}) exited ({status}); starting it again in {:?}",
                    r.spec.name,
                    c.id(),
                    restart_after
                );
                r.child = None;
                r.again_at = Some(Instant::now() + restart_after);
                any = true;
            }
            if r.again_at.is_some_and(|t| Instant::now() >= t) {
                r.again_at = None;
                match spawn(r) {
                    Ok(()) => println!("cluster: {} started again", r.spec.name),
                    Err(e) => {
                        println!("cluster: {e}; trying again in {restart_after:?}");
                        r.again_at = Some(Instant::now() + restart_after);
                    }
                }
                any = true;
            }
        }
        if any {
            report(&all);
        }
    }
}

fn status(r: &Running) -> Status {
    Status {
        name: r.spec.name.clone(),
        pid: r.child.as_ref().map(Child::id),
        starts: r.starts,
        log: r.spec.log.clone(),
        address: r.spec.address.clone(),
    }
}

fn spawn(r: &mut Running) -> Result<(), String> {
    let s = &r.spec;
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log)
            .map_err(|e| format!("cannot open {} for {}: {e}", s.log.display(), s.name))
    };
    let mut cmd = Command::new(&s.program);
    cmd.args(&s.args)
        .envs(s.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        // Its own process group: a Ctrl-C meant for the cluster reaches each process only as
        // the ordered stop sends it.
        .process_group(0);
    // SAFETY: prctl is async-signal-safe. The process dies with the supervisor thread, which
    // lives as long as the cluster.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {} ({}): {e}", s.name, s.program.display()))?;
    r.child = Some(child);
    r.starts += 1;
    Ok(())
}

fn stop_all(all: &mut [Running], grace: Duration) {
    let mut stages: Vec<u8> = all.iter().map(|r| r.spec.stage).collect();
    stages.sort_unstable();
    stages.dedup();
    for stage in stages {
        let group: Vec<&mut Running> = all.iter_mut().filter(|r| r.spec.stage == stage).collect();
        for r in &group {
            if let Some(c) = &r.child {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let deadline = Instant::now() + grace;
        for r in group {
            r.again_at = None;
            let Some(mut c) = r.child.take() else {
                continue;
            };
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        println!(
                            "cluster: {} did not stop in {grace:?}; killing it",
                            r.spec.name
                        );
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}
