//! Containing a job's process tree: its own cgroup v2 where the executor can create one (so a
//! descendant that called `setsid` is still reached), else its own process group. Signals only
//! ever go to the job's cgroup or group, never to a bare pid that may have been reused.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::io;
use std::path::{Path, PathBuf};
use taskwire_core::wire::TreeMode;
use uuid::Uuid;

/// The executor's own cgroup directory, under which each job gets a child cgroup.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    dir: PathBuf,
}

impl CgroupRoot {
    /// Finds the cgroup2 mount (from /proc/self/mountinfo) and the executor's own cgroup, and
    /// checks that a job cgroup can be created there with `cgroup.kill`. Returns why not when
    /// it cannot. Job cgroups left by a previous run of this instance are killed and removed.
    pub fn probe(guid: &Uuid) -> Result<Self, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mount = mountinfo
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                (right.split_whitespace().next()? == "cgroup2")
                    .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
            })
            .ok_or("no cgroup2 file system is mounted")?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("this process has no cgroup v2 path")?;
        let dir = mount
            .join(own.trim().trim_start_matches('/'))
            .join(format!("taskwire-{guid}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e} (no delegated cgroup)", dir.display()))?;
        let root = Self { dir };
        root.reap_stale();
        let probe = root.dir.join("probe");
        let _ = std::fs::create_dir(&probe);
        let has_kill = probe.join("cgroup.kill").exists();
        let _ = std::fs::remove_dir(&probe);
        if !has_kill {
            return Err("cgroup.kill is missing (kernel older than 5.14)".into());
        }
        Ok(root)
    }

    /// Removes the executor's cgroup directory (at shutdown, once every job cgroup is gone).
    pub fn remove(&self) {
        self.reap_stale();
        remove_cgroup(&self.dir);
    }

    /// Where the cgroups live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the cgroup of one job.
    pub fn create_job(&self, job_id: &Uuid) -> io::Result<PathBuf> {
        let dir = self.dir.join(format!("job-{job_id}"));
        std::fs::create_dir(&dir)?;
        Ok(dir)
    }

    /// Kills and removes job cgroups a previous run of this instance left behind: their
    /// processes would otherwise run unsupervised.
    fn reap_stale(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            let n = cgroup_procs(&path).len();
            if n > 0 {
                tracing::warn!(cgroup = %path.display(), processes = n, "killing processes left by a previous run");
                let _ = std::fs::write(path.join("cgroup.kill"), "1");
            }
            remove_cgroup(&path);
        }
    }
}

/// One job's process tree.
#[derive(Debug)]
pub struct Tree {
    /// The process group id (= the job's main pid).
    pgid: Pid,
    cgroup: Option<PathBuf>,
}

impl Tree {
    pub fn new(pgid: Pid, cgroup: Option<PathBuf>) -> Self {
        Self { pgid, cgroup }
    }

    pub fn mode(&self) -> TreeMode {
        if self.cgroup.is_some() {
            TreeMode::Cgroup
        } else {
            TreeMode::ProcessGroup
        }
    }

    /// Sends `sig` to every process of the tree, once each. Must be called before the main
    /// process is reaped, or while other members live, so the process group id cannot have
    /// been reused. The process group goes first (the job's main process at once, without
    /// reading the cgroup first), then the members of the cgroup that left the group.
    pub fn signal(&self, sig: Signal) {
        if let Some(dir) = &self.cgroup
            && sig == Signal::SIGKILL
            && std::fs::write(dir.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        let _ = killpg(self.pgid, sig);
        if let Some(dir) = &self.cgroup {
            for pid in cgroup_procs(dir) {
                if nix::unistd::getpgid(Some(pid)) != Ok(self.pgid) {
                    let _ = kill(pid, sig);
                }
            }
        }
    }

    /// Live members of the tree other than `leader` (zombies excluded).
    pub fn members(&self, leader: Pid) -> Vec<Pid> {
        match &self.cgroup {
            Some(dir) => cgroup_procs(dir)
                .into_iter()
                .filter(|p| *p != leader)
                .collect(),
            None => group_members(self.pgid)
                .into_iter()
                .filter(|p| *p != leader)
                .collect(),
        }
    }

    /// Removes the job's cgroup (once empty).
    pub fn cleanup(&self) {
        if let Some(dir) = &self.cgroup {
            remove_cgroup(dir);
        }
    }
}

fn cgroup_procs(dir: &Path) -> Vec<Pid> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .map(Pid::from_raw)
        .collect()
}

fn remove_cgroup(dir: &Path) {
    // rmdir fails while the kernel still tears processes down: retry briefly.
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    tracing::warn!(cgroup = %dir.display(), "could not remove job cgroup");
}

/// Processes whose process group is `pgid` and that are not zombies, from /proc.
fn group_members(pgid: Pid) -> Vec<Pid> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|s| s.parse::<i32>().ok());
        if pgrp == Some(pgid.as_raw()) && state != Some("Z") {
            out.push(Pid::from_raw(pid));
        }
    }
    out
}

/// Resident memory of `pids`, summed, from /proc/<pid>/statm.
pub fn rss_bytes(pids: &[Pid]) -> Option<u64> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let mut total = 0;
    let mut any = false;
    for p in pids {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/statm"))
            && let Some(r) = s
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        {
            total += r * page;
            any = true;
        }
    }
    any.then_some(total)
}

/// All processes of the tree including the leader, for memory accounting.
pub fn all_pids(tree: &Tree, leader: Pid) -> Vec<Pid> {
    let mut v = vec![leader];
    v.extend(tree.members(leader));
    v
}
