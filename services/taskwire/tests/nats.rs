//! `taskwire nats init` and `taskwire nats setup` make a NATS that refuses anonymous clients,
//! knows each service and executor by its own key, and holds the streams and consumers.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use taskwire_core::nats::Endpoint;

fn taskwire(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire"));
    cmd.args(args)
        .env_remove("TASKWIRE_CONFIG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_and_setup_make_an_authenticated_nats_with_every_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let d = dir.to_str().unwrap();
    let (code, out, err) = taskwire(&["nats", "init", "--dir", d, "--executors", "2"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let executors = taskwire_core::auth::manifest::load(&dir).unwrap();
    assert_eq!(executors.len(), 2);
    // Nothing secret on the terminal; every key file private.
    let gateway_seed = std::fs::read_to_string(dir.join("gateway.nk")).unwrap();
    assert!(!out.contains(gateway_seed.trim()), "{out}");
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if e.path().extension().is_some_and(|x| x == "nk") {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(e.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    // A second run keeps the keys and adds the executor asked for.
    let guid = uuid::Uuid::new_v4().to_string();
    let (code, out, err) = taskwire(&["nats", "init", "--dir", d, "--executor", &guid], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("gateway.nk")).unwrap(),
        gateway_seed
    );
    assert_eq!(taskwire_core::auth::manifest::load(&dir).unwrap().len(), 3);

    let nats = taskwire_testkit::NatsServer::start_with(Some(&dir.join("auth.conf")));
    let (code, out, err) = taskwire(
        &["nats", "setup", "--dir", d],
        &[("TASKWIRE_NATS_URL", &nats.url())],
    );
    assert_eq!(code, 0, "{out}{err}");

    let anonymous = taskwire_core::nats::connect_once(&nats.url(), "anonymous").await;
    assert!(anonymous.is_err());
    // The executor's key is accepted, and the admin made its channel's consumer.
    let exec = format!("executor-{guid}");
    let ep = Endpoint::new(nats.url(), Some(dir.join(format!("{exec}.nk"))))
        .with_inbox(format!("_INBOX.exec-{guid}"));
    let client = taskwire_core::nats::connect_once_to(&ep, "exec")
        .await
        .unwrap();
    let js = taskwire_core::nats::jetstream(client);
    let topo = taskwire_core::topology::open(&js, &taskwire_core::Namespace::root())
        .await
        .unwrap();
    // Its own consumer on TW_INST the admin did not make, and the executor may not make it
    // (a permission violation: no answer); a kill broker's key makes it, in memory at one
    // replica.
    let ns = taskwire_core::Namespace::root();
    let guid = uuid::Uuid::parse_str(&guid).unwrap();
    let own = ns.consumer_instance(&guid);
    assert!(topo.instance_jobs_stream.consumer_info(&own).await.is_err());
    let config = taskwire_core::topology::instance_consumer(&ns, &guid, 0);
    assert!(
        topo.instance_jobs_stream
            .create_consumer(config.clone())
            .await
            .is_err()
    );
    let broker = taskwire_core::nats::connect_once_to(
        &Endpoint::new(nats.url(), Some(dir.join("kill-broker.nk")))
            .with_inbox("_INBOX.kill-broker"),
        "broker",
    )
    .await
    .unwrap();
    let broker_topo = taskwire_core::topology::open(&taskwire_core::nats::jetstream(broker), &ns)
        .await
        .unwrap();
    let mut made = broker_topo
        .instance_jobs_stream
        .create_consumer(config)
        .await
        .unwrap();
    let info = made.info().await.unwrap();
    assert!(info.config.memory_storage && info.config.num_replicas == 1);
    assert_eq!(info.config.filter_subject, ns.dispatch_instance(&guid));
    topo.jobs_stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("chan-default")
        .await
        .unwrap();
}

#[test]
fn init_refuses_a_bad_channel_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, err) = taskwire(
        &[
            "nats",
            "init",
            "--dir",
            tmp.path().to_str().unwrap(),
            "--executors",
            "1",
            "--channels",
            "a.b",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("a.b") && err.contains("channel"), "{err}");
}
