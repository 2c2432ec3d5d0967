//! `taskwire nats init` and `taskwire nats setup`: NATS as a security boundary in production.
//!
//! `init` makes a deployment's key material in one directory (private files): a key per
//! service and per executor, the callout issuer and the dispatch signing key, the server
//! config (`auth.conf`, for every nats-server to `include`) and the list of executors. Run
//! again, it keeps every key and adds the executors asked for. `setup` is the admin step: the
//! streams, buckets and durable consumers, made with the admin key.

use crate::error::CliError;
use std::path::PathBuf;
use taskwire_core::auth::keys::KeyDir;
use taskwire_core::auth::manifest;
use taskwire_core::auth::roles::Role;
use taskwire_core::config::Settings;
use taskwire_core::topology::ExecutorEntry;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct NatsArgs {
    #[command(subcommand)]
    command: NatsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum NatsCommand {
    /// Make (or complete) the keys and the nats-server config of a deployment.
    Init(InitArgs),
    /// Create or update the streams, buckets and durable consumers, as the admin identity.
    Setup(SetupArgs),
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    /// Where the keys and the config go (made mode 0700; keep it secret).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// How many new executors to add (each gets a new GUID and its own key).
    #[arg(long, default_value_t = 0, value_name = "N")]
    executors: usize,
    /// An executor to add (or change) by its GUID, e.g. one already running.
    #[arg(long = "executor", value_name = "GUID")]
    guids: Vec<Uuid>,
    /// The channels the executors added in this run may serve (comma separated).
    #[arg(
        long,
        default_value = "default",
        value_delimiter = ',',
        value_name = "NAMES"
    )]
    channels: Vec<String>,
    /// No auth callout (direct NATS clients cannot sign in with a taskwire token).
    #[arg(long)]
    no_callout: bool,
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    /// The directory `taskwire nats init` made (its admin.nk and executors.toml are used).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

pub async fn run(config: Option<PathBuf>, args: NatsArgs) -> Result<(), CliError> {
    let settings = Settings::load(config.as_deref())?;
    let ns = settings.namespace()?;
    match args.command {
        NatsCommand::Init(a) => init(&ns, a),
        NatsCommand::Setup(a) => {
            let executors = manifest::load(&a.dir)?;
            let admin = taskwire_core::nats::Endpoint::new(
                settings.nats_url.clone(),
                // Read-only is enough here (a mounted secret directory).
                Some(a.dir.join(format!("{}.nk", Role::Admin.name()))),
            )
            .with_inbox(Role::Admin.inbox_prefix());
            taskwire_core::auth::setup(&admin, &ns, &settings.topology, &executors).await?;
            println!(
                "streams, buckets and the consumers of {} executor(s) are ready on {}",
                executors.len(),
                settings.nats_url
            );
            Ok(())
        }
    }
}

fn init(ns: &taskwire_core::Namespace, a: InitArgs) -> Result<(), CliError> {
    for ch in &a.channels {
        taskwire_core::names::check_token("channel", ch)?;
    }
    let added: Vec<ExecutorEntry> = a
        .guids
        .iter()
        .copied()
        .chain((0..a.executors).map(|_| Uuid::new_v4()))
        .map(|guid| ExecutorEntry {
            guid,
            channels: a.channels.clone(),
        })
        .collect();
    let executors = manifest::merge(manifest::load(&a.dir)?, added.clone());
    let conf = taskwire_core::auth::provision(&a.dir, ns, &executors, !a.no_callout)?;
    manifest::save(&a.dir, &executors)?;
    let keys = KeyDir::open(&a.dir)?;
    println!(
        "NATS keys and config in {} (keep this directory secret)",
        a.dir.display()
    );
    println!(
        "  server config: {}  (include it in every nats-server config)",
        conf.display()
    );
    for role in [
        Role::Admin,
        Role::Gateway,
        Role::AuditWriter,
        Role::KillBroker,
        Role::Scheduler,
    ] {
        println!(
            "  {:<13} nats_credentials = {}",
            role.name(),
            keys.path(&role).display()
        );
    }
    for e in &executors {
        let role = Role::Executor {
            guid: e.guid,
            channels: e.channels.clone(),
        };
        let new = if added.iter().any(|x| x.guid == e.guid) {
            " (new)"
        } else {
            ""
        };
        println!(
            "  executor {}{new}: [executor] guid = \"{}\", channels = {:?}, nats_credentials = {}",
            e.guid,
            e.guid,
            e.channels,
            keys.path(&role).display()
        );
    }
    println!(
        "  gateway:       dispatch_signing_key = {}, nats_callout_issuer_seed = {}",
        keys.signing_path().display(),
        keys.issuer_path().display()
    );
    println!(
        "  executors:     dispatch_trusted_keys = [\"{}\"]",
        keys.signing_public()?
    );
    println!(
        "Then: start (or restart) nats-server with the config, and run `taskwire nats setup --dir {}`.",
        a.dir.display()
    );
    if !added.is_empty() && !a.no_callout {
        println!(
            "New executors are known to nats-server after a restart (it does not reload its auth_callout block); restart the nodes one at a time."
        );
    }
    Ok(())
}
