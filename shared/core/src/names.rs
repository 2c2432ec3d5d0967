//! Every NATS name taskwire uses: subjects, streams, consumers, KV buckets and headers.
//!
//! A [`Namespace`] carries an optional prefix so that tests and tenants sharing one NATS
//! deployment stay apart: with prefix `t1`, `tw.out.<job>` becomes `t1.tw.out.<job>`, stream
//! `TW_OUTPUT` becomes `T1_TW_OUTPUT` and bucket `tw_jobs` becomes `t1_tw_jobs`. Nothing outside
//! this module formats a subject.

use crate::error::{Error, Result};
use uuid::Uuid;

/// Header carrying an output chunk's 1-based sequence number within its job.
pub const HDR_SEQ: &str = "Tw-Seq";
/// Header carrying an output chunk's stream: `stdout`, `stderr` or `system`.
pub const HDR_STREAM: &str = "Tw-Stream";
/// Header of a compressed output chunk: `lz4` (absent: the payload is the bytes as written).
pub const HDR_ENCODING: &str = "Tw-Encoding";
/// JetStream de-duplication header (set on dispatch and output publishes).
pub const HDR_MSG_ID: &str = "Nats-Msg-Id";
/// Header of the last message of a followed job's output (`tw.api.jobs.follow`): `end`,
/// `slow` or `error`, with the matching frame as the body.
pub const HDR_END: &str = "Tw-End";

/// The origin token of events published by the control services (`tw.evt.ctl.<job>`).
pub const CONTROL_ORIGIN: &str = "ctl";

/// Who published a lifecycle event or an output chunk, as its subject says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The gateway or the kill broker (`queued`, `cancelled`, `lost`).
    Control,
    /// Instance `guid`, about a job it runs.
    Instance(Uuid),
}
/// Header of a dispatch message naming the public nkey (`U...`) that signed its payload.
pub const HDR_SIGNER: &str = "Tw-Signer";
/// Header of a dispatch message carrying the ed25519 signature of its exact payload bytes
/// (base64url, no padding).
pub const HDR_SIGNATURE: &str = "Tw-Signature";

/// The name space all subjects, streams and buckets of one taskwire deployment live in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    prefix: Option<String>,
}

impl Namespace {
    /// The default name space: subjects start with `tw.`.
    pub fn root() -> Self {
        Self { prefix: None }
    }

    /// A prefixed name space. The prefix is one subject token of letters, digits, `_` or `-`.
    pub fn with_prefix(prefix: &str) -> Result<Self> {
        if prefix.is_empty() {
            return Ok(Self::root());
        }
        check_token("namespace prefix", prefix)?;
        Ok(Self {
            prefix: Some(prefix.to_string()),
        })
    }

    /// The prefix, if any.
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    fn subject(&self, rest: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}.tw.{rest}"),
            None => format!("tw.{rest}"),
        }
    }

    fn upper(&self, name: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{}_{name}", p.to_uppercase().replace('-', "_")),
            None => name.to_string(),
        }
    }

    fn lower(&self, name: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{}_{name}", p.replace('-', "_")),
            None => name.to_string(),
        }
    }

    // ---- dispatch (stream TW_JOBS) ----

    /// Jobs for any executor serving `channel`.
    pub fn dispatch_channel(&self, channel: &str) -> String {
        self.subject(&format!("dispatch.chan.{channel}"))
    }

    /// Jobs for exactly one instance.
    pub fn dispatch_instance(&self, guid: &Uuid) -> String {
        self.subject(&format!("dispatch.inst.{guid}"))
    }

    /// Every dispatch subject (the gateways publish to them).
    pub fn dispatch_all(&self) -> String {
        self.subject("dispatch.>")
    }

    /// Wildcard captured by the `TW_JOBS` stream: every channel's jobs.
    pub fn dispatch_channel_all(&self) -> String {
        self.subject("dispatch.chan.>")
    }

    /// Wildcard captured by the `TW_INST` stream: jobs for one instance each.
    pub fn dispatch_instance_all(&self) -> String {
        self.subject("dispatch.inst.>")
    }

    // ---- output (stream TW_OUTPUT) ----

    /// One message per output chunk of `job`, published by instance `guid` (the only
    /// identity allowed to publish under `tw.out.<guid>.>`).
    pub fn output(&self, guid: &Uuid, job: &Uuid) -> String {
        self.subject(&format!("out.{guid}.{job}"))
    }

    /// The output of `job` from whichever instance published it (readers that do not know
    /// the job's instance yet; they check the instance token against the job's record).
    pub fn output_any(&self, job: &Uuid) -> String {
        self.subject(&format!("out.*.{job}"))
    }

    /// Everything instance `guid` may publish as output.
    pub fn output_from_all(&self, guid: &Uuid) -> String {
        self.subject(&format!("out.{guid}.>"))
    }

    /// Wildcard captured by the `TW_OUTPUT` stream.
    pub fn output_all(&self) -> String {
        self.subject("out.>")
    }

    // ---- lifecycle and audit events (stream TW_EVENTS) ----

    /// Lifecycle events of `job` published by `origin`: `tw.evt.<guid>.<job>` for an
    /// instance's own events, `tw.evt.ctl.<job>` for the control services (gateway, kill
    /// broker).
    pub fn event(&self, origin: &Origin, job: &Uuid) -> String {
        match origin {
            Origin::Control => self.subject(&format!("evt.{CONTROL_ORIGIN}.{job}")),
            Origin::Instance(guid) => self.subject(&format!("evt.{guid}.{job}")),
        }
    }

    /// Every lifecycle event of `job`, whoever published it.
    pub fn event_any(&self, job: &Uuid) -> String {
        self.subject(&format!("evt.*.{job}"))
    }

    /// Everything instance `guid` may publish as lifecycle events.
    pub fn event_from_all(&self, guid: &Uuid) -> String {
        self.subject(&format!("evt.{guid}.>"))
    }

    /// Everything the control services may publish as lifecycle events.
    pub fn event_from_control_all(&self) -> String {
        self.subject(&format!("evt.{CONTROL_ORIGIN}.>"))
    }

    /// Who published a message on an output or event subject: the token after `out.` or
    /// `evt.`. `None` when the subject is not of that form.
    pub fn origin_of(&self, subject: &str) -> Option<Origin> {
        let rest = match &self.prefix {
            Some(p) => subject.strip_prefix(p.as_str())?.strip_prefix('.')?,
            None => subject,
        };
        let rest = rest.strip_prefix("tw.")?;
        let rest = rest
            .strip_prefix("out.")
            .or_else(|| rest.strip_prefix("evt."))?;
        let token = rest.split('.').next()?;
        if token == CONTROL_ORIGIN {
            Some(Origin::Control)
        } else {
            Uuid::parse_str(token).ok().map(Origin::Instance)
        }
    }

    /// Wildcard of all job lifecycle events.
    pub fn event_all(&self) -> String {
        self.subject("evt.>")
    }

    /// Audit events of one kind (`decision`, `malformed`, ...).
    pub fn audit(&self, kind: &str) -> String {
        self.subject(&format!("audit.{kind}"))
    }

    /// Wildcard of all audit events.
    pub fn audit_all(&self) -> String {
        self.subject("audit.>")
    }

    // ---- audit store queries (handled by the audit writers' queue group) ----
    /// One query of the audit store (`jobs.list`, `jobs.get`, `jobs.output`, `audit.list`),
    /// asked by gateways (request/reply).
    pub fn store(&self, verb: &str) -> String {
        self.subject(&format!("store.{verb}"))
    }

    /// Wildcard of every audit store query.
    pub fn store_all(&self) -> String {
        self.subject("store.>")
    }

    // ---- public request API (handled by the gateway's queue group) ----

    /// One verb of the NATS request API, e.g. `jobs.submit`.
    pub fn api(&self, verb: &str) -> String {
        self.subject(&format!("api.{verb}"))
    }

    /// Wildcard of the whole request API.
    pub fn api_all(&self) -> String {
        self.subject("api.>")
    }

    // ---- stop, kill, cancel ----

    /// Stop/kill/cancel requests to the kill broker (request/reply, from gateways only).
    pub fn kill_request(&self) -> String {
        self.subject("kill.request")
    }

    // ---- per-instance control ----

    /// Kill and stop requests for the jobs of one instance (request/reply).
    pub fn exec_kill(&self, guid: &Uuid) -> String {
        self.subject(&format!("exec.{guid}.kill"))
    }

    /// Every instance's kill subject (the kill broker's to publish).
    pub fn exec_kill_all(&self) -> String {
        self.subject("exec.*.kill")
    }

    /// An executor's request that the kill brokers make its own consumer of `TW_INST`, or make
    /// it again (request/reply, from that executor only).
    pub fn instance_consumer_request(&self, guid: &Uuid) -> String {
        self.subject(&format!("consumer.inst.{guid}"))
    }

    /// Every instance's consumer request (the kill brokers' queue group).
    pub fn instance_consumer_request_all(&self) -> String {
        self.subject("consumer.inst.*")
    }

    // ---- schedules ----

    /// A schedule's fire, from a scheduler to the gateways' queue group (request/reply): the
    /// gateway checks the owner's permission and submits the job.
    pub fn schedule_fire(&self) -> String {
        self.subject("sched.fire")
    }

    // ---- streams, consumers, buckets ----

    /// Work-queue stream of the jobs dispatched to channels.
    pub fn stream_jobs(&self) -> String {
        self.upper("TW_JOBS")
    }

    /// Stream of the jobs dispatched to one instance each (limits retention, so that each
    /// instance's consumer may be one replica in memory).
    pub fn stream_instance_jobs(&self) -> String {
        self.upper("TW_INST")
    }

    /// Stream of output chunks.
    pub fn stream_output(&self) -> String {
        self.upper("TW_OUTPUT")
    }

    /// Stream of lifecycle and audit events.
    pub fn stream_events(&self) -> String {
        self.upper("TW_EVENTS")
    }

    /// Durable pull consumer shared by every executor serving `channel`.
    pub fn consumer_channel(&self, channel: &str) -> String {
        format!("chan-{channel}")
    }

    /// Pull consumer of one instance's own dispatch subject, on `TW_INST` (made by that
    /// executor; an older release made it durable on `TW_JOBS`).
    pub fn consumer_instance(&self, guid: &Uuid) -> String {
        format!("inst-{guid}")
    }

    /// Where nats-server announces that `consumer` of `TW_JOBS` has a new leader. An executor
    /// listens for its own consumers' so that it asks the new leader for work at once (the
    /// pull requests it had pending died with the old one).
    pub fn advisory_dispatch_leader(&self, consumer: &str) -> String {
        format!(
            "$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED.{}.{consumer}",
            self.stream_jobs()
        )
    }

    /// Durable pull consumer of `TW_EVENTS` shared by every audit writer.
    pub fn consumer_audit_events(&self) -> String {
        "audit-writer-events".to_string()
    }

    /// Durable pull consumer of `TW_OUTPUT` shared by every audit writer.
    pub fn consumer_audit_output(&self) -> String {
        "audit-writer-output".to_string()
    }

    /// Registry of live instances (heartbeat values expire).
    pub fn bucket_instances(&self) -> String {
        self.lower("tw_instances")
    }

    /// Live job state; claims and cancels are compare-and-set on an entry's revision.
    pub fn bucket_jobs(&self) -> String {
        self.lower("tw_jobs")
    }

    /// Schedules, key `<schedule_id>`.
    pub fn bucket_schedules(&self) -> String {
        self.lower("tw_schedules")
    }

    /// Schedule fires (key `f.<schedule_id>.<fire_ms>`, created once: the claim and then the
    /// history entry) and each schedule's progress (key `c.<schedule_id>`).
    pub fn bucket_fires(&self) -> String {
        self.lower("tw_schedule_fires")
    }
}

/// Checks that `value` is a safe single subject token: 1 to 64 characters of ASCII letters,
/// digits, `_` and `-`. Channel names, label keys and prefixes go through this.
pub fn check_token(what: &'static str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            value: value.chars().take(80).collect(),
            rule: "use 1 to 64 letters, digits, '_' or '-'",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_subjects_match_the_protocol() {
        let ns = Namespace::root();
        let job = Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap();
        let guid = Uuid::parse_str("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f").unwrap();
        assert_eq!(ns.dispatch_channel("default"), "tw.dispatch.chan.default");
        assert_eq!(
            ns.dispatch_instance(&guid),
            "tw.dispatch.inst.6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
        );
        assert_eq!(
            ns.output(&guid, &job),
            "tw.out.6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f.0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d"
        );
        assert_eq!(
            ns.event(&Origin::Control, &job),
            "tw.evt.ctl.0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d"
        );
        assert_eq!(
            ns.origin_of(&ns.event(&Origin::Instance(guid), &job)),
            Some(Origin::Instance(guid))
        );
        assert_eq!(
            ns.origin_of(&ns.output(&guid, &job)),
            Some(Origin::Instance(guid))
        );
        assert_eq!(ns.origin_of("tw.evt.ctl.x"), Some(Origin::Control));
        assert_eq!(ns.origin_of("tw.evt.nonsense.x"), None);
        let p = Namespace::with_prefix("t1").unwrap();
        assert_eq!(
            p.origin_of(&p.event(&Origin::Instance(guid), &job)),
            Some(Origin::Instance(guid))
        );
        assert_eq!(ns.audit("decision"), "tw.audit.decision");
        assert_eq!(
            ns.exec_kill(&guid),
            "tw.exec.6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f.kill"
        );
        assert_eq!(ns.api("jobs.submit"), "tw.api.jobs.submit");
        assert_eq!(ns.kill_request(), "tw.kill.request");
        assert_eq!(ns.stream_jobs(), "TW_JOBS");
        assert_eq!(ns.bucket_jobs(), "tw_jobs");
    }

    #[test]
    fn prefix_isolates_every_name() {
        let ns = Namespace::with_prefix("t-1").unwrap();
        assert_eq!(ns.dispatch_all(), "t-1.tw.dispatch.>");
        assert_eq!(ns.stream_output(), "T_1_TW_OUTPUT");
        assert_eq!(ns.bucket_instances(), "t_1_tw_instances");
        assert!(Namespace::with_prefix("a.b").is_err());
        assert!(Namespace::with_prefix("a b").is_err());
    }

    #[test]
    fn tokens_reject_wildcards_and_dots() {
        assert!(check_token("channel", "default").is_ok());
        for bad in ["", "a.b", "*", ">", "a b", &"x".repeat(65)] {
            assert!(check_token("channel", bad).is_err(), "{bad}");
        }
    }
}
