//! taskwire-gateway: the only door into taskwire.
//!
//! Every request that reaches the gateway leaves an audit event on NATS (allowed, denied or
//! malformed), stored durably before anything it allowed is dispatched. The gateway never
//! spawns processes and never writes SQL.
//!
//! Layout (where to look for what):
//!
//! - The operations, one typed function each: `ops` (`ops::jobs::submit`,
//!   `ops::control::end`, `ops::schedules::update`, ...). They take the `gateway::Gateway`, the
//!   authenticated [`identity::Principal`], the [`identity::Caller`] and a typed input, check
//!   the ACL, audit every decision, and return a document of `taskwire_core::wire::api`.
//! - The doors, each only authenticating (audited), reading its input (malformed audited),
//!   calling an operation and encoding the answer: `http` (REST under `/api/v1`, the route
//!   table, `/openapi.json`; every HTTP request, a socket's upgrade too, starts from
//!   `call::Call`), `socket` (the output stream of one job as a WebSocket or
//!   Server-Sent Events, and the multiplexed socket), `nats_api` (`tw.api.*`; `nats_follow`
//!   streams a followed job's output), `callout` (direct NATS clients signing in with their
//!   token: NATS auth callout), `fire`
//!   (schedule fires on `tw.sched.fire`, run as their owner).
//! - What every request goes through: `gateway` (the shared state: authenticate, audit,
//!   enforce), [`auth`] (who is asking: tokens, JWTs, a trusted proxy), `acl` (what they may
//!   do, deny by default), [`identity`] (principal, caller, action, permission: the leaf every
//!   other module uses), `ids` (job ids and idempotency keys), `error` (the API's error
//!   answer).
//! - What the operations read from: `registry` (the instance registry, a watched copy),
//!   `feed` (one shared output feed per watched job, fanned out to every viewer),
//!   `store_client` (the audit store's answers on `tw.store.*`).
//! - `console`: the built web console's files at `/`.
//! - [`config`]: the `[gateway]` section.

pub mod auth;
pub mod config;
pub mod identity;

mod acl;
mod call;
mod callout;
mod console;
mod error;
mod feed;
mod fire;
mod gateway;
mod http;
mod ids;
mod known;
mod nats_api;
mod nats_follow;
mod ops;
mod socket;
mod store_client;

pub use config::GatewayConfig;
pub use error::{GatewayError, Result};
pub use identity::Permission;

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;
use taskwire_core::Namespace;
use taskwire_core::config::Settings;
use taskwire_core::jobs::JobStore;
use taskwire_core::schedule::store::ScheduleStore;
use taskwire_core::topology::{self, TopologyConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The user name of the admin token given by `admin_token` / `TASKWIRE_ADMIN_TOKEN`.
pub const ADMIN_USER: &str = "admin";

/// Everything the gateway needs to start.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub nats_url: String,
    /// This service's NATS key file (`None`: connect without one).
    pub nats_credentials: Option<std::path::PathBuf>,
    pub namespace: Namespace,
    pub topology: TopologyConfig,
    pub config: GatewayConfig,
    /// A token in clear for the super user `admin` (from `taskwire up`).
    pub admin_token: Option<String>,
}

impl GatewayOptions {
    /// Reads the shared keys, the `[gateway]` section and `TASKWIRE_ALLOWED_COMMANDS`.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let mut config: GatewayConfig = settings.section("gateway")?;
        config
            .apply_allowed_commands_env(std::env::var("TASKWIRE_ALLOWED_COMMANDS").ok().as_deref())
            .map_err(GatewayError::Config)?;
        Ok(Self {
            nats_url: settings.nats_url.clone(),
            nats_credentials: settings.nats_credentials.clone(),
            namespace: settings.namespace()?,
            topology: settings.topology.clone(),
            config,
            admin_token: settings.admin_token.clone(),
        })
    }
}

/// A started gateway: its HTTP listener and its NATS subjects, until [`GatewayServer::stop`].
#[derive(Debug)]
pub struct GatewayServer {
    addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    background: JoinHandle<()>,
    console: Option<std::path::PathBuf>,
}

impl GatewayServer {
    /// Connects, binds the listener and starts serving.
    pub async fn start(opts: GatewayOptions) -> Result<Self> {
        // On the heap: the start's state machine is large (every connection and copy it opens),
        // too large for the stack of a caller that awaits it inline (a test's thread).
        Box::pin(Self::start_now(opts)).await
    }

    async fn start_now(opts: GatewayOptions) -> Result<Self> {
        let mut cfg = opts.config;
        if opts.admin_token.is_some() && !cfg.super_users.iter().any(|u| u == ADMIN_USER) {
            cfg.super_users.push(ADMIN_USER.into());
        }
        cfg.validate().map_err(GatewayError::Config)?;
        let client = taskwire_core::nats::connect_to(
            &taskwire_core::nats::Endpoint::new(
                opts.nats_url.clone(),
                opts.nats_credentials.clone(),
            )
            .with_inbox(taskwire_core::auth::roles::Role::Gateway.inbox_prefix()),
            "taskwire-gateway",
        )
        .await?;
        let js = taskwire_core::nats::jetstream(client.clone());
        let topo = topology::open(&js, &opts.namespace).await?;
        let mut auth = auth::Authenticator::new(&cfg.tokens, cfg.jwt.as_ref(), cfg.proxy.as_ref())
            .map_err(GatewayError::Config)?;
        if let Some(t) = &opts.admin_token {
            auth.add_plain(
                t,
                identity::Principal::new(identity::Source::Token, ADMIN_USER, Vec::new()),
            );
        }
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| GatewayError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| GatewayError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let history = store_client::StoreClient::new(client.clone(), opts.namespace.clone());
        let mut jobs = JobStore::new(js, topo.jobs.clone(), opts.namespace.clone());
        match &cfg.dispatch_signing_key {
            Some(path) => {
                let signer = taskwire_core::sign::DispatchSigner::from_file(path)
                    .map_err(|e| GatewayError::Config(e.to_string()))?;
                tracing::info!(public_key = %signer.public_key(), "dispatch messages are signed");
                jobs = jobs.with_signer(Arc::new(signer));
            }
            None => tracing::warn!(
                "no [gateway] dispatch_signing_key: dispatch messages are unsigned, and executors run them only with allow_unsigned_dispatch (development only)"
            ),
        }
        let gw = Arc::new(gateway::Gateway {
            jobs,
            schedules: ScheduleStore::new(
                client.clone(),
                topo.schedules.clone(),
                topo.fires.clone(),
            ),
            feeds: feed::FeedHub::new(
                feed::FeedSource {
                    topology: topo.clone(),
                    ns: opts.namespace.clone(),
                    store: history.clone(),
                },
                usize::try_from(cfg.feed_window).unwrap_or(usize::MAX),
            ),
            history,
            registry: taskwire_core::registry::Registry::new(opts.topology.instance_ttl),
            known: known::KnownJobs::default(),
            acl: acl::Acl::new(&cfg),
            auth,
            client,
            ns: opts.namespace,
            topology: topo,
            cfg,
        });
        let stop = CancellationToken::new();
        // The NATS doors first: a start that cannot serve them fails here, saying why.
        let api = nats_api::serve(gw.clone(), stop.clone()).await?;
        let fires = fire::serve(gw.clone(), stop.clone()).await?;
        let callout = callout::serve(gw.clone(), stop.clone()).await?;
        let background = tokio::spawn({
            let (gw, stop) = (gw.clone(), stop.clone());
            async move {
                let kv = gw.topology.instances.clone();
                let callout = async {
                    if let Some(c) = callout {
                        c.stopped().await;
                    }
                };
                tokio::join!(
                    api.stopped(),
                    fires.stopped(),
                    callout,
                    gw.registry.follow(kv, stop)
                );
            }
        });
        let console = console::Console::locate(gw.cfg.console_dir.as_deref());
        let console_dir = console.dir().map(std::path::Path::to_path_buf);
        let sndbuf = usize::try_from(gw.cfg.socket_send_buffer).unwrap_or(usize::MAX);
        let app = http::router(gw, console);
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                let listener = listener.tap_io(move |tcp| {
                    // Small frames (live output) go out at once; the kernel holds at most
                    // `socket_send_buffer` for a viewer that does not read.
                    let _ = tcp.set_nodelay(true);
                    let _ = nix::sys::socket::setsockopt(
                        tcp,
                        nix::sys::socket::sockopt::SndBuf,
                        &sndbuf,
                    );
                });
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
            }
        });
        tracing::info!(%addr, "gateway listening");
        Ok(Self {
            addr,
            stop,
            server,
            background,
            console: console_dir,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The built web console it serves at `/`, if one was configured or found.
    pub fn console_dir(&self) -> Option<&std::path::Path> {
        self.console
            .as_deref()
            .filter(|d| d.join("index.html").is_file())
    }

    /// Stops accepting connections and requests, and waits for open ones (streams end at
    /// once).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.background.await;
        match tokio::time::timeout(std::time::Duration::from_secs(10), self.server).await {
            Ok(_) => tracing::info!("gateway stopped"),
            Err(_) => tracing::warn!("gateway stop timed out with requests still open"),
        }
    }
}

/// Runs a gateway until `shutdown`.
pub async fn run(opts: GatewayOptions, shutdown: CancellationToken) -> Result<()> {
    let gw = GatewayServer::start(opts).await?;
    shutdown.cancelled().await;
    gw.stop().await;
    Ok(())
}
