//! taskwire-gateway: the only door into taskwire.
//!
//! - [`auth`]: who is asking (API tokens stored as SHA-256 hashes).
//! - [`acl`]: what they may do (permissions per verb granted to roles, commands allowed per
//!   role, super users), deny by default.
//! - [`routes`]: the REST API under `/api/v1` and the output stream WebSocket.
//! - [`nats_api`]: the same API as NATS requests (`tw.api.>`), same ACL and audit.
//! - [`feed`]: one shared output consumer per watched job, fanned out to every viewer.
//!
//! Every request that reaches the gateway leaves an audit event on NATS (allowed, denied or
//! malformed), stored durably before anything it allowed is dispatched. The gateway never
//! spawns processes and never writes SQL.

pub mod acl;
pub mod auth;
pub mod config;
pub mod error;
pub mod feed;
pub mod fire;
pub mod history;
pub mod nats_api;
pub mod registry;
pub mod routes;
pub mod state;

pub use config::GatewayConfig;
pub use error::{GatewayError, Result};

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;
use taskwire_core::Namespace;
use taskwire_core::config::Settings;
use taskwire_core::jobs::JobStore;
use taskwire_core::topology::{self, TopologyConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The user name of the admin token given by `admin_token` / `TASKWIRE_ADMIN_TOKEN`.
pub const ADMIN_USER: &str = "admin";

/// Everything the gateway needs to start.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub nats_url: String,
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
            namespace: settings.namespace()?,
            topology: settings.topology.clone(),
            config,
            admin_token: settings.admin_token.clone(),
        })
    }
}

/// A started gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    nats_api: JoinHandle<()>,
    console: Option<std::path::PathBuf>,
}

impl Gateway {
    /// Connects, binds the listener and starts serving.
    pub async fn start(opts: GatewayOptions) -> Result<Self> {
        let mut cfg = opts.config;
        if opts.admin_token.is_some() && !cfg.super_users.iter().any(|u| u == ADMIN_USER) {
            cfg.super_users.push(ADMIN_USER.into());
        }
        cfg.validate().map_err(GatewayError::Config)?;
        let client = taskwire_core::nats::connect(&opts.nats_url, "taskwire-gateway").await?;
        let js = taskwire_core::nats::jetstream(client.clone());
        let topo = topology::ensure(&js, &opts.namespace, &opts.topology).await?;
        let store = JobStore::new(js, topo.jobs.clone(), opts.namespace.clone());
        let mut tokens =
            auth::Authenticator::new(&cfg.tokens, cfg.jwt.as_ref(), cfg.proxy.as_ref())
                .map_err(GatewayError::Config)?;
        if let Some(t) = &opts.admin_token {
            tokens.add_plain(
                t,
                auth::Principal {
                    user: ADMIN_USER.into(),
                    roles: Vec::new(),
                },
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
        let schedules = taskwire_core::schedule::store::ScheduleStore::new(
            client.clone(),
            topo.schedules.clone(),
            topo.fires.clone(),
        );
        let state = Arc::new(state::Inner {
            client,
            ns: opts.namespace,
            topology: topo,
            store,
            schedules,
            registry: registry::Registry::new(opts.topology.instance_ttl),
            tokens,
            acl: acl::Acl::new(&cfg),
            console: routes::console::Console::locate(cfg.console_dir.as_deref()),
            cfg,
            feeds: feed::FeedHub::default(),
        });
        let sndbuf = usize::try_from(state.cfg.socket_send_buffer).unwrap_or(usize::MAX);
        let console = state.console.dir().map(std::path::Path::to_path_buf);
        let app = routes::router(state.clone());
        let stop = CancellationToken::new();
        let nats_api = tokio::spawn({
            let (st, stop) = (state.clone(), stop.clone());
            async move {
                let kv = st.topology.instances.clone();
                tokio::join!(
                    nats_api::serve(st.clone(), stop.clone()),
                    fire::serve(st.clone(), stop.clone()),
                    st.registry.follow(kv, stop)
                );
            }
        });
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
            nats_api,
            console,
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

    /// Stops accepting connections and waits for open requests (streams end at once).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.nats_api.await;
        match tokio::time::timeout(std::time::Duration::from_secs(10), self.server).await {
            Ok(_) => tracing::info!("gateway stopped"),
            Err(_) => tracing::warn!("gateway stop timed out with requests still open"),
        }
    }
}

/// Runs a gateway until `shutdown`.
pub async fn run(opts: GatewayOptions, shutdown: CancellationToken) -> Result<()> {
    let gw = Gateway::start(opts).await?;
    shutdown.cancelled().await;
    gw.stop().await;
    Ok(())
}
