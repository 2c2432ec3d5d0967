//! The roles on the bus and exactly what each may publish and subscribe to.
//!
//! These lists are the server's only guard between taskwire's services: the nats-server config
//! ([`super::server_conf`]) is rendered from them, and `docs/protocol.md` states them as one
//! table. A service that needs a new subject gets it here and nowhere else.
//!
//! JetStream is reached through subjects too (`$JS.API.…` for the API, `$KV.<bucket>.…` for a
//! bucket's writes, `$JS.ACK.…` for acknowledgements), so the same lists bound who may read or
//! write which stream, consumer and bucket. Only [`Role::Admin`] may create, change, purge or
//! delete streams and durable consumers; services only open what the admin made. The one
//! exception is an executor's consumer of its own instance subject, which it makes itself.

use crate::names::Namespace;
use uuid::Uuid;

/// One identity on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Creates streams, buckets and durable consumers (`taskwire up`, `taskwire nats setup`).
    Admin,
    Gateway,
    AuditWriter,
    KillBroker,
    Scheduler,
    /// One executor, bound to its instance GUID and the channels it serves.
    Executor {
        guid: Uuid,
        channels: Vec<String>,
    },
}

impl Role {
    /// The role's file stem and name in logs: `gateway`, `executor-<guid>`, …
    pub fn name(&self) -> String {
        match self {
            Role::Admin => "admin".into(),
            Role::Gateway => "gateway".into(),
            Role::AuditWriter => "audit-writer".into(),
            Role::KillBroker => "kill-broker".into(),
            Role::Scheduler => "scheduler".into(),
            Role::Executor { guid, .. } => format!("executor-{guid}"),
        }
    }

    /// The inbox prefix the role's connections use; each role may subscribe to its own only,
    /// so no identity reads another's replies.
    pub fn inbox_prefix(&self) -> String {
        match self {
            Role::Executor { guid, .. } => format!("_INBOX.exec-{guid}"),
            other => format!("_INBOX.{}", other.name()),
        }
    }
}

/// Where executor `guid` answers `asker`'s kill requests (a gateway's or a kill broker's): a
/// part of the asker's inbox that no other request of it uses (the client's own inboxes are
/// `<prefix>.<nuid>`, and a nuid is never `kill`), one per executor, so an executor that may
/// publish under it can answer a kill sent to itself and nothing else the asker asked.
pub fn kill_inbox(asker: &Role, guid: &Uuid) -> String {
    format!("{}.kill.{guid}", asker.inbox_prefix())
}

/// A fresh reply subject under [`kill_inbox`] for one kill request `client` (of `asker`)
/// sends to executor `guid`; its last token is the client's next inbox token.
pub fn kill_reply(client: &async_nats::Client, asker: &Role, guid: &Uuid) -> String {
    let inbox = client.new_inbox();
    let token = inbox.rsplit('.').next().unwrap_or_default();
    format!("{}.{token}", kill_inbox(asker, guid))
}

/// Whether `reply` is under the inbox of one of the service roles (or an executor's).
pub fn is_service_inbox(reply: &str) -> bool {
    let Some(rest) = reply.strip_prefix("_INBOX.") else {
        return false;
    };
    let token = rest.split('.').next().unwrap_or("");
    rest.len() > token.len()
        && ([
            "admin",
            "gateway",
            "audit-writer",
            "kill-broker",
            "scheduler",
        ]
        .contains(&token)
            || token
                .strip_prefix("exec-")
                .is_some_and(|g| Uuid::parse_str(g).is_ok()))
}

/// What one identity may do: subjects it may publish to (minus `publish_deny`), subjects it
/// may subscribe to, and whether it may answer requests sent to it (one reply each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe: Vec<String>,
    pub allow_responses: bool,
}

/// Answers to requests of `from` (and of the admin, the operator's own tools), in their
/// inboxes only: a request's reply subject cannot make this role publish anywhere else.
fn answers(p: &mut Permissions, from: &Role) {
    p.publish.extend([
        format!("{}.>", from.inbox_prefix()),
        format!("{}.>", Role::Admin.inbox_prefix()),
    ]);
}

/// Reads of one stream: its info, message gets, and ephemeral consumers (create, info, next,
/// ack, delete) that read it.
fn read_stream(p: &mut Permissions, stream: &str) {
    p.publish.extend([
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.INFO.{stream}.*"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.*"),
        format!("$JS.ACK.{stream}.>"),
        format!("$JS.FC.{stream}.>"),
    ]);
}

/// Reads and writes (put, create, update, delete) of one bucket.
fn write_bucket(p: &mut Permissions, bucket: &str) {
    read_stream(p, &format!("KV_{bucket}"));
    p.publish.push(format!("$KV.{bucket}.>"));
}

/// Binds to durable consumer `name` of `stream` that the admin made: info, next, ack.
fn bind_durable(p: &mut Permissions, stream: &str, name: &str) {
    p.publish.extend([
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.CONSUMER.INFO.{stream}.{name}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"),
        format!("$JS.ACK.{stream}.{name}.>"),
    ]);
}

/// Ephemeral consumers of `stream` must not be able to take the name of a durable one (a
/// create under an existing name would change it).
fn deny_durables(p: &mut Permissions, ns: &Namespace, stream: &str) {
    let names = [ns.consumer_audit_events(), ns.consumer_audit_output()];
    for n in names {
        p.publish_deny.extend([
            format!("$JS.API.CONSUMER.CREATE.{stream}.{n}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.{n}.>"),
            format!("$JS.API.CONSUMER.DELETE.{stream}.{n}"),
        ]);
    }
}

/// The allow-lists of `role` in name space `ns`. `None` for the admin: it may do anything.
pub fn permissions(role: &Role, ns: &Namespace) -> Option<Permissions> {
    let mut p = Permissions {
        subscribe: vec![format!("{}.>", role.inbox_prefix())],
        ..Permissions::default()
    };
    match role {
        Role::Admin => return None,
        Role::Gateway => {
            // Its answers go to inboxes (`_INBOX.>` below). The auth callout's answers go to
            // the reply subject nats-server gives, which only a response permission covers.
            p.allow_responses = true;
            p.subscribe.extend([
                ns.api_all(),
                ns.schedule_fire(),
                "$SYS.REQ.USER.AUTH".to_string(),
            ]);
            p.publish.extend([
                // Answers to direct clients' inboxes: a verb may answer with many messages
                // (the output of a followed job).
                "_INBOX.>".to_string(),
                ns.kill_request(),
                // A kill of a job it saw running goes to its instance at once (the broker's
                // hop is for the rest: queued jobs, and jobs it knows nothing of).
                ns.exec_kill_all(),
                ns.store_all(),
                ns.dispatch_all(),
                ns.event_from_control_all(),
                ns.audit_all(),
                format!("$JS.API.STREAM.INFO.{}", ns.stream_jobs()),
                // Deleting a job removes its output (a purge filtered by the job's subject).
                format!("$JS.API.STREAM.PURGE.{}", ns.stream_output()),
            ]);
            read_stream(&mut p, &ns.stream_output());
            read_stream(&mut p, &ns.stream_events());
            deny_durables(&mut p, ns, &ns.stream_output());
            deny_durables(&mut p, ns, &ns.stream_events());
            write_bucket(&mut p, &ns.bucket_jobs());
            write_bucket(&mut p, &ns.bucket_schedules());
            write_bucket(&mut p, &ns.bucket_fires());
            read_stream(&mut p, &format!("KV_{}", ns.bucket_instances()));
        }
        Role::AuditWriter => {
            // Answers the gateways' store queries, in their inboxes.
            answers(&mut p, &Role::Gateway);
            p.subscribe.push(ns.store_all());
            bind_durable(&mut p, &ns.stream_events(), &ns.consumer_audit_events());
            bind_durable(&mut p, &ns.stream_output(), &ns.consumer_audit_output());
            p.publish
                .push(format!("$JS.API.STREAM.INFO.{}", ns.stream_jobs()));
            for b in all_buckets(ns) {
                p.publish.push(format!("$JS.API.STREAM.INFO.KV_{b}"));
            }
        }
        Role::KillBroker => {
            // Answers the gateways' kill requests, in their inboxes, and the executors'
            // consumer requests (a response permission: only to the request's reply subject).
            answers(&mut p, &Role::Gateway);
            p.allow_responses = true;
            p.subscribe
                .extend([ns.kill_request(), ns.instance_consumer_request_all()]);
            // The executors' own consumers of TW_INST: made, asked about, and deleted when
            // they no longer answer.
            let inst = ns.stream_instance_jobs();
            p.publish.extend([
                format!("$JS.API.CONSUMER.CREATE.{inst}.>"),
                format!("$JS.API.CONSUMER.INFO.{inst}.*"),
                format!("$JS.API.CONSUMER.DELETE.{inst}.*"),
            ]);
            p.publish.extend([
                ns.exec_kill_all(),
                ns.event_from_control_all(),
                format!("$JS.API.STREAM.INFO.{}", ns.stream_jobs()),
                format!("$JS.API.STREAM.INFO.{}", ns.stream_output()),
                format!("$JS.API.STREAM.INFO.{}", ns.stream_events()),
            ]);
            write_bucket(&mut p, &ns.bucket_jobs());
            read_stream(&mut p, &format!("KV_{}", ns.bucket_instances()));
            for b in [ns.bucket_schedules(), ns.bucket_fires()] {
                p.publish.push(format!("$JS.API.STREAM.INFO.KV_{b}"));
            }
        }
        Role::Scheduler => {
            p.publish.extend([
                ns.schedule_fire(),
                format!("$JS.API.STREAM.INFO.{}", ns.stream_jobs()),
                format!("$JS.API.STREAM.INFO.{}", ns.stream_output()),
                format!("$JS.API.STREAM.INFO.{}", ns.stream_events()),
            ]);
            write_bucket(&mut p, &ns.bucket_schedules());
            write_bucket(&mut p, &ns.bucket_fires());
            read_stream(&mut p, &format!("KV_{}", ns.bucket_jobs()));
            p.publish
                .push(format!("$JS.API.STREAM.INFO.KV_{}", ns.bucket_instances()));
        }
        Role::Executor { guid, channels } => {
            p.subscribe.push(ns.exec_kill(guid));
            // Answers the kill brokers' and the gateways' kill requests, each in the part of
            // their inbox kept for this executor's kill answers, and the admin's.
            p.publish.extend([
                format!("{}.>", kill_inbox(&Role::KillBroker, guid)),
                format!("{}.>", kill_inbox(&Role::Gateway, guid)),
                format!("{}.>", Role::Admin.inbox_prefix()),
            ]);
            p.publish.extend([
                ns.output_from_all(guid),
                ns.event_from_all(guid),
                format!("$KV.{}.{guid}", ns.bucket_instances()),
                format!("$JS.API.STREAM.INFO.KV_{}", ns.bucket_instances()),
                format!("$JS.API.STREAM.INFO.{}", ns.stream_output()),
                format!("$JS.API.STREAM.INFO.{}", ns.stream_events()),
            ]);
            // Claims: reads and compare-and-set writes of any job's record (a channel's job
            // may go to any of its instances). See protocol.md for what bounds that. No
            // consumers (watches, listings) of the bucket: an executor needs none.
            let jobs_kv = format!("KV_{}", ns.bucket_jobs());
            p.publish.extend([
                format!("$JS.API.STREAM.INFO.{jobs_kv}"),
                format!("$JS.API.STREAM.MSG.GET.{jobs_kv}"),
                format!("$JS.API.DIRECT.GET.{jobs_kv}"),
                format!("$JS.API.DIRECT.GET.{jobs_kv}.>"),
                format!("$KV.{}.>", ns.bucket_jobs()),
            ]);
            for b in [ns.bucket_schedules(), ns.bucket_fires()] {
                p.publish.push(format!("$JS.API.STREAM.INFO.KV_{b}"));
            }
            let (jobs, inst) = (ns.stream_jobs(), ns.stream_instance_jobs());
            // Its own consumer of TW_INST the kill brokers make on its request, and make
            // again after it was lost with a node. It may not make one itself: a create's
            // config (a push consumer's delivery subject, say) is in the body, which no
            // permission can check, so a consumer of its own could deliver anywhere.
            let own = ns.consumer_instance(guid);
            p.publish.push(ns.instance_consumer_request(guid));
            bind_durable(&mut p, &inst, &own);
            // The one an older release made on TW_JOBS, while it still holds jobs.
            bind_durable(&mut p, &jobs, &own);
            for ch in channels {
                let name = ns.consumer_channel(ch);
                bind_durable(&mut p, &jobs, &name);
                p.subscribe.push(ns.advisory_dispatch_leader(&name));
            }
        }
    }
    // Every service opens every stream at its start (`topology::open`).
    p.publish
        .push(format!("$JS.API.STREAM.INFO.{}", ns.stream_instance_jobs()));
    p.publish.sort();
    p.publish.dedup();
    p.subscribe.sort();
    p.subscribe.dedup();
    Some(p)
}

fn all_buckets(ns: &Namespace) -> [String; 4] {
    [
        ns.bucket_jobs(),
        ns.bucket_instances(),
        ns.bucket_schedules(),
        ns.bucket_fires(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guid(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    #[test]
    fn executors_are_confined_to_their_own_guid() {
        let ns = Namespace::root();
        let a = Role::Executor {
            guid: guid(1),
            channels: vec!["default".into()],
        };
        let p = permissions(&a, &ns).unwrap();
        let b = guid(2).to_string();
        for list in [&p.publish, &p.subscribe] {
            assert!(list.iter().all(|s| !s.contains(&b)), "{list:?}");
            assert!(!list.iter().any(|s| s == ">" || s.starts_with("tw.api")));
        }
        assert!(p.subscribe.contains(&ns.exec_kill(&guid(1))));
        // It makes and deletes no consumer (a kill broker makes its own one on its request,
        // which only it may send).
        assert!(p.publish.contains(&ns.instance_consumer_request(&guid(1))));
        let inst = ns.stream_instance_jobs();
        assert!(!p.publish.iter().any(|s| s.contains("STREAM.CREATE")
            || s.contains("STREAM.UPDATE")
            || s.contains("STREAM.PURGE")
            || s.contains("STREAM.DELETE")
            || s.contains("CONSUMER.CREATE")
            || s.contains("CONSUMER.DELETE")
            || s.contains('*') && (s.contains(&ns.stream_jobs()) || s.contains(&inst))
            || s.starts_with("tw.kill")
            || s.starts_with("tw.store")
            || s.starts_with("tw.sched")
            || s.starts_with("tw.dispatch")
            || s.starts_with("tw.audit")));
    }

    #[test]
    fn service_inboxes_are_told_from_others() {
        let g = Uuid::from_bytes([3; 16]);
        assert!(is_service_inbox(&format!(
            "{}.x",
            Role::Scheduler.inbox_prefix()
        )));
        assert!(is_service_inbox(&format!(
            "{}.x",
            Role::Executor {
                guid: g,
                channels: vec![]
            }
            .inbox_prefix()
        )));
        for other in [
            "_INBOX.scheduler",
            "_INBOX.0123abcd.x",
            "tw.kill.request",
            "_INBOX.exec-nope.x",
        ] {
            assert!(!is_service_inbox(other), "{other}");
        }
    }

    #[test]
    fn no_service_may_change_streams() {
        let ns = Namespace::root();
        for role in [
            Role::Gateway,
            Role::AuditWriter,
            Role::KillBroker,
            Role::Scheduler,
        ] {
            let p = permissions(&role, &ns).unwrap();
            for s in &p.publish {
                let purge_output = role == Role::Gateway
                    && *s == format!("$JS.API.STREAM.PURGE.{}", ns.stream_output());
                assert!(
                    purge_output
                        || !(s.contains("STREAM.CREATE")
                            || s.contains("STREAM.UPDATE")
                            || s.contains("STREAM.PURGE")
                            || s.contains("STREAM.DELETE")
                            || s == ">"
                            || s == "$JS.API.>"),
                    "{role:?} may publish {s}"
                );
            }
            assert!(p.subscribe.iter().all(|s| s != ">" && s != "_INBOX.>"));
        }
        assert!(permissions(&Role::Admin, &ns).is_none());
    }
}
