//! Who is asking and what they ask for: the vocabulary every other module of the gateway
//! shares. This module depends on nothing else of the gateway, so authentication, the ACL,
//! the configuration and the operations can all use it without import circles.

use std::net::{IpAddr, SocketAddr};
use taskwire_core::wire::Via;

pub use taskwire_core::wire::api::Permission;

/// Where an identity comes from. Identities of different sources are different people, even
/// with the same name: a JWT whose `sub` is `admin` is not the configured token user `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An API token of the configuration (or `taskwire up`'s admin token).
    Token,
    /// A JWT of the identity provider.
    Jwt,
    /// The headers of the authenticating proxy.
    Proxy,
}

impl Source {
    /// The prefix of this source's identities (`jwt:`, `proxy:`); token users have none, so
    /// the names the operator configured stay as they are.
    pub fn prefix(self) -> &'static str {
        match self {
            Source::Token => "",
            Source::Jwt => "jwt:",
            Source::Proxy => "proxy:",
        }
    }

    /// The source of a recorded identity (`jwt:alice`, `proxy:alice`, or a token user's
    /// name), and the name within the source.
    pub fn of(identity: &str) -> (Source, &str) {
        for source in [Source::Jwt, Source::Proxy] {
            if let Some(name) = identity.strip_prefix(source.prefix()) {
                return (source, name);
            }
        }
        (Source::Token, identity)
    }
}

/// An authenticated caller: its identity, recorded in every audit event, job and schedule
/// and compared whole wherever ownership is checked, and its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The identity: the user's name for a token user, `jwt:<name>` or `proxy:<name>` for the
    /// other sources (see [`Source::prefix`]).
    pub user: String,
    pub source: Source,
    pub roles: Vec<String>,
}

impl Principal {
    /// The user `name` of `source` with `roles`.
    pub fn new(source: Source, name: &str, roles: Vec<String>) -> Self {
        Self {
            user: format!("{}{name}", source.prefix()),
            source,
            roles,
        }
    }

    /// The principal a recorded identity (a job's or schedule's owner) names, with `roles`.
    pub fn recorded(identity: &str, roles: Vec<String>) -> Self {
        Self {
            user: identity.to_string(),
            source: Source::of(identity).0,
            roles,
        }
    }
}

/// Where a request came from, and through which door.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Recorded in the audit event: the peer address, `nats`, or `schedule <id>`.
    pub source: String,
    /// The peer address (absent for the NATS API and schedule fires); proxy headers are
    /// trusted only from configured networks.
    pub ip: Option<IpAddr>,
    pub via: Via,
}

impl Caller {
    /// A request over HTTP (or a socket opened over HTTP) from `addr`.
    pub fn http(addr: SocketAddr, via: Via) -> Self {
        Self {
            source: addr.to_string(),
            ip: Some(addr.ip()),
            via,
        }
    }

    /// A request of the NATS API.
    pub fn nats() -> Self {
        Self {
            source: "nats".into(),
            ip: None,
            via: Via::Nats,
        }
    }

    /// A fire of schedule `id`, run as its owner.
    pub fn schedule(id: &uuid::Uuid) -> Self {
        Self {
            source: format!("schedule {id}"),
            ip: None,
            via: Via::Schedule,
        }
    }
}

/// What a request asks for, as the audit log names it (`AuditEvent.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Me,
    CommandsList,
    InstancesList,
    JobsSubmit,
    JobsList,
    JobsGet,
    JobsWatch,
    JobsOutput,
    JobsStream,
    JobsStop,
    JobsKill,
    JobsDelete,
    AuditList,
    SchedulesList,
    SchedulesCreate,
    SchedulesGet,
    SchedulesUpdate,
    SchedulesDelete,
    SchedulesPause,
    SchedulesResume,
    SchedulesHistory,
    SchedulesPreview,
    /// A multiplexed socket opened (or refused).
    WsConnect,
    /// A socket frame that could not be read.
    WsOp,
    /// An open socket whose token stopped authenticating.
    WsSession,
    /// A job's output followed over NATS (`tw.api.jobs.follow`).
    JobsFollow,
    /// A direct NATS client signing in through the auth callout (or refused).
    NatsConnect,
    /// A request for no known NATS verb or HTTP path (the reason says what was asked).
    Unknown,
}

impl Action {
    /// The name in the audit log; also the NATS API verb of the operations it has.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Me => "me",
            Action::CommandsList => "commands.list",
            Action::InstancesList => "instances.list",
            Action::JobsSubmit => "jobs.submit",
            Action::JobsList => "jobs.list",
            Action::JobsGet => "jobs.get",
            Action::JobsWatch => "jobs.watch",
            Action::JobsOutput => "jobs.output",
            Action::JobsStream => "jobs.stream",
            Action::JobsStop => "jobs.stop",
            Action::JobsKill => "jobs.kill",
            Action::JobsDelete => "jobs.delete",
            Action::AuditList => "audit.list",
            Action::SchedulesList => "schedules.list",
            Action::SchedulesCreate => "schedules.create",
            Action::SchedulesGet => "schedules.get",
            Action::SchedulesUpdate => "schedules.update",
            Action::SchedulesDelete => "schedules.delete",
            Action::SchedulesPause => "schedules.pause",
            Action::SchedulesResume => "schedules.resume",
            Action::SchedulesHistory => "schedules.history",
            Action::SchedulesPreview => "schedules.preview",
            Action::WsConnect => "ws.connect",
            Action::WsOp => "ws.op",
            Action::WsSession => "ws.session",
            Action::JobsFollow => "jobs.follow",
            Action::NatsConnect => "nats.connect",
            Action::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
