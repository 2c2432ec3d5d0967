//! What this gateway knows of live jobs without asking NATS: each job's owner (which never
//! changes) and, once it was seen running, its instance (which never changes either while the
//! job is live). Learned from the jobs it submitted and the live records it read; a job seen
//! ended is forgotten. A stop or kill decides from it (the ACL needs only the owner), so the
//! audit event need not wait for a read of the record, and a job known to be running is
//! routed to its instance without one.
//!
//! Nothing here can make a wrong decision: the owner is the record's, the instance is the one
//! the record named, and a job that ended meanwhile is answered by its instance ("not running
//! here"), after which the kill broker reads the record. Bounded: the oldest entries are
//! dropped beyond [`CAPACITY`] (a job not known is looked up as before).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use taskwire_core::wire::{JobRecord, JobState};
use uuid::Uuid;

/// Most jobs remembered.
pub const CAPACITY: usize = 65_536;

/// One live job as this gateway knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// `spec.requested_by`.
    pub owner: String,
    /// The instance the record named while `running`; `None` while it was queued.
    pub running_on: Option<Uuid>,
}

/// The live jobs this gateway has seen.
#[derive(Debug, Default)]
pub struct KnownJobs {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    jobs: HashMap<Uuid, Known>,
    /// Insertion order, for dropping the oldest (may name jobs already forgotten).
    order: VecDeque<Uuid>,
}

impl KnownJobs {
    /// What is known of `job_id`.
    pub fn get(&self, job_id: &Uuid) -> Option<Known> {
        self.inner.lock().ok()?.jobs.get(job_id).cloned()
    }

    /// Learns from a live record just read or written: a queued or running job is kept, an
    /// ended one (or a delayed job's cancel marker) forgotten.
    pub fn note(&self, record: &JobRecord) {
        let id = record.spec.job_id;
        if record.state.is_terminal() || record.cancelled_before_queued {
            self.forget(&id);
            return;
        }
        let known = Known {
            owner: record.spec.requested_by.clone(),
            running_on: (record.state == JobState::Running)
                .then_some(record.instance)
                .flatten(),
        };
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        match inner.jobs.get_mut(&id) {
            // A record read late never takes back what a newer one showed.
            Some(k) => {
                if known.running_on.is_some() {
                    *k = known;
                }
            }
            None => {
                inner.jobs.insert(id, known);
                inner.order.push_back(id);
                while inner.order.len() > CAPACITY {
                    if let Some(old) = inner.order.pop_front() {
                        inner.jobs.remove(&old);
                    }
                }
            }
        }
    }

    /// Forgets `job_id` (it ended, was deleted, or is not what was known).
    pub fn forget(&self, job_id: &Uuid) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.jobs.remove(job_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskwire_core::wire::{JobSpec, Target, Via};

    fn record(state: JobState, instance: Option<Uuid>) -> JobRecord {
        let spec = JobSpec::new(
            "echo",
            Target::Channel("default".into()),
            "alice",
            Via::Http,
        );
        let mut r = JobRecord::queued(spec);
        r.state = state;
        r.instance = instance;
        r
    }

    #[test]
    fn keeps_the_owner_and_the_running_instance_and_forgets_ended_jobs() {
        let known = KnownJobs::default();
        let mut r = record(JobState::Queued, None);
        let id = r.spec.job_id;
        known.note(&r);
        assert_eq!(
            known.get(&id),
            Some(Known {
                owner: "alice".into(),
                running_on: None
            })
        );
        let guid = Uuid::now_v7();
        r.state = JobState::Running;
        r.instance = Some(guid);
        known.note(&r);
        assert_eq!(known.get(&id).and_then(|k| k.running_on), Some(guid));
        // a late read of the queued record does not take the instance back
        known.note(&record_with_id(&r, JobState::Queued));
        assert_eq!(known.get(&id).and_then(|k| k.running_on), Some(guid));
        r.state = JobState::Killed;
        known.note(&r);
        assert_eq!(known.get(&id), None);
    }

    #[test]
    fn a_delayed_jobs_cancel_marker_is_not_kept() {
        let known = KnownJobs::default();
        let mut r = record(JobState::Queued, None);
        r.cancelled_before_queued = true;
        known.note(&r);
        assert_eq!(known.get(&r.spec.job_id), None);
    }

    #[test]
    fn holds_at_most_capacity_jobs() {
        let known = KnownJobs::default();
        let first = record(JobState::Queued, None);
        known.note(&first);
        for _ in 0..CAPACITY {
            known.note(&record(JobState::Queued, None));
        }
        assert_eq!(known.get(&first.spec.job_id), None);
        assert_eq!(known.inner.lock().unwrap().jobs.len(), CAPACITY);
    }

    fn record_with_id(r: &JobRecord, state: JobState) -> JobRecord {
        let mut q = r.clone();
        q.state = state;
        q.instance = None;
        q
    }
}
