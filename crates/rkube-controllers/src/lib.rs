//! Controllers: each watches one kind of object, compares what is declared with what is, and
//! acts through the API server like any other client.
//!
//! [`ControllerManager`] runs them all; each controller is started by one entry of
//! [`CONTROLLERS`], so adding a controller is adding a module and a line there.

pub mod certificates;
pub mod controller_ref;
pub mod cron_schedule;
pub mod cronjob;
pub mod daemon_nodes;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod informer;
pub mod job;
pub mod job_policy;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod persistentvolume;
pub mod podgc;
pub mod podutil;
pub mod replicaset;
pub mod resourcequota;
mod revisions;
pub mod serviceaccount;
pub mod servicelb;
pub mod settings;
pub mod statefulset;
pub mod tainteviction;
mod workload_pods;

use std::future::Future;
use std::pin::Pin;

pub use gc::GarbageCollector;
pub use informer::SharedInformers;
pub use namespace::NamespaceController;
pub use serviceaccount::ServiceAccountController;
pub use settings::Settings;

/// What every controller is given: the client it acts through and cluster facts.
#[derive(Clone)]
pub struct Context {
    /// A client acting as the controller manager.
    pub client: kube::Client,
    /// The informers every controller shares: one watch and one cache per resource.
    pub informers: SharedInformers,
    /// The cluster CA certificate (PEM), published in every namespace.
    pub ca_cert: String,
    /// The cluster CA's private key (PEM), with which `csrsigning` issues certificates; without
    /// it nothing is signed.
    pub ca_key: Option<String>,
    /// Cluster settings for the node and pod controllers (`--cluster-cidr`, grace periods …).
    pub settings: Settings,
}

/// A controller's task: runs until dropped.
pub type ControllerTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One controller: its name (as upstream's `--controllers` names it) and how to start it.
pub struct ControllerDef {
    /// The controller's name, e.g. `namespace`.
    pub name: &'static str,
    /// Builds the controller's task.
    pub start: fn(Context) -> ControllerTask,
}

/// Every controller the manager runs.
pub const CONTROLLERS: &[ControllerDef] = &[
    ControllerDef {
        name: "namespace",
        start: |ctx| Box::pin(NamespaceController::new(ctx.informers).run()),
    },
    ControllerDef {
        name: "garbage-collector",
        start: |ctx| Box::pin(GarbageCollector::new(ctx.client).run()),
    },
    ControllerDef {
        name: "serviceaccount",
        start: |ctx| Box::pin(ServiceAccountController::new(ctx.informers, ctx.ca_cert).run()),
    },
    ControllerDef {
        name: "endpoint",
        start: |ctx| Box::pin(endpoints::EndpointsController::new(ctx.informers).run()),
    },
    ControllerDef {
        name: "endpointslice",
        start: |ctx| Box::pin(endpointslice::EndpointSliceController::new(ctx.informers).run()),
    },
    ControllerDef {
        name: "endpointslicemirroring",
        start: |ctx| {
            Box::pin(
                endpointslicemirroring::EndpointSliceMirroringController::new(ctx.informers).run(),
            )
        },
    },
    ControllerDef {
        name: "nodeipam",
        start: |ctx| Box::pin(nodeipam::run(ctx.informers, ctx.settings)),
    },
    ControllerDef {
        name: "nodelifecycle",
        start: |ctx| {
            Box::pin(
                nodelifecycle::NodeLifecycleController::new(ctx.informers, &ctx.settings).run(),
            )
        },
    },
    ControllerDef {
        name: "taint-eviction-controller",
        start: |ctx| Box::pin(tainteviction::TaintEvictionController::new(ctx.informers).run()),
    },
    ControllerDef {
        name: "podgc",
        start: |ctx| Box::pin(podgc::PodGcController::new(ctx.informers, &ctx.settings).run()),
    },
    ControllerDef {
        name: "resourcequota",
        start: |ctx| {
            Box::pin(
                resourcequota::ResourceQuotaController::new(ctx.informers, &ctx.settings).run(),
            )
        },
    },
    ControllerDef {
        name: "disruption",
        start: |ctx| {
            Box::pin(disruption::DisruptionController::new(ctx.informers, &ctx.settings).run())
        },
    },
    ControllerDef {
        name: "persistentvolume-binder",
        start: |ctx| {
            Box::pin(persistentvolume::PersistentVolumeController::new(ctx.informers).run())
        },
    },
    ControllerDef {
        name: "cronjob",
        start: |ctx| Box::pin(cronjob::CronJobController::new(ctx.informers).run()),
    },
    ControllerDef {
        name: "daemonset",
        start: |ctx| Box::pin(daemonset::DaemonSetController::new(ctx.informers).run()),
    },
    ControllerDef {
        name: "job",
        start: |ctx| Box::pin(job::JobController::new(ctx.informers).run()),
    },
    ControllerDef {
        name: "statefulset",
        start: |ctx| Box::pin(statefulset::StatefulSetController::new(ctx.informers).run()),
    },
    ControllerDef {
        name: "replicaset",
        start: |ctx| Box::pin(replicaset::ReplicaSetController::run(ctx.informers)),
    },
    ControllerDef {
        name: "deployment",
        start: |ctx| Box::pin(deployment::DeploymentController::run(ctx.informers)),
    },
    ControllerDef {
        name: "replicationcontroller",
        start: |ctx| {
            Box::pin(replicaset::ReplicationControllerController::run(
                ctx.informers,
            ))
        },
    },
    ControllerDef {
        name: "csrapproving",
        start: |ctx| {
            Box::pin(certificates::approver::CsrApprovingController::new(ctx.client).run())
        },
    },
    ControllerDef {
        name: "servicelb",
        start: |ctx| {
            Box::pin(async move {
                if ctx.settings.service_lb {
                    servicelb::ServiceLbController::new(ctx.informers)
                        .run()
                        .await;
                }
            })
        },
    },
    ControllerDef {
        name: "csrsigning",
        start: |ctx| Box::pin(start_csr_signing(ctx)),
    },
];

/// The CSR signer, if the manager was given the CA key and it can be read.
async fn start_csr_signing(ctx: Context) {
    use certificates::signer::{CsrSigningController, Signer};
    let Some(key) = &ctx.ca_key else {
        tracing::info!("no cluster CA key: certificate signing requests are not signed");
        return;
    };
    match Signer::new(&ctx.ca_cert, key, ctx.settings.cluster_signing_duration) {
        Ok(signer) => CsrSigningController::new(ctx.client, signer).run().await,
        Err(e) => tracing::error!(error = %e, "certificate signing requests are not signed"),
    }
}

/// The Lease the controller manager's leader holds (namespace, name), as upstream's.
pub const LEADER_LEASE: (&str, &str) = ("kube-system", "kube-controller-manager");

/// Runs the controllers, optionally only while elected leader.
pub struct ControllerManager {
    context: Context,
    election: Option<(String, rkube_lease::LeaderElectionConfig)>,
    only: Option<Vec<String>>,
}

impl ControllerManager {
    /// A manager acting through `client`, without leader election.
    pub fn new(client: kube::Client, ca_cert: impl Into<String>) -> Self {
        Self {
            context: Context {
                informers: SharedInformers::new(client.clone()),
                client,
                ca_cert: ca_cert.into(),
                ca_key: None,
                settings: Settings::default(),
            },
            election: None,
            only: None,
        }
    }

    /// Uses `settings` instead of the defaults.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.context.settings = settings;
        self
    }

    /// Signs approved certificate signing requests with the cluster CA's key (PEM), the
    /// counterpart of the CA certificate given to [`ControllerManager::new`] (upstream's
    /// `--cluster-signing-key-file`).
    pub fn with_signing_key(mut self, ca_key: impl Into<String>) -> Self {
        self.context.ca_key = Some(ca_key.into());
        self
    }

    /// Runs the controllers only while this manager holds the `kube-system/kube-controller-manager`
    /// Lease as `identity` (see [`rkube_lease::default_identity`]).
    pub fn with_leader_election(
        mut self,
        identity: impl Into<String>,
        config: rkube_lease::LeaderElectionConfig,
    ) -> Self {
        self.election = Some((identity.into(), config));
        self
    }

    /// Runs only the named controllers (names as in [`CONTROLLERS`]).
    pub fn with_controllers(mut self, names: &[&str]) -> Self {
        self.only = Some(names.iter().map(|n| (*n).to_owned()).collect());
        self
    }

    /// Runs every controller until the returned future is dropped.
    pub async fn run(self) {
        self.run_until(std::future::pending()).await
    }

    /// Runs every controller until `shutdown` completes; under leader election the Lease is
    /// then released so that another manager takes over at once.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let Self {
            context,
            election,
            only,
        } = self;
        let client = context.client.clone();
        let start_all = move || {
            // Each term as leader starts from fresh caches, as a newly started manager would.
            let context = Context {
                informers: SharedInformers::new(context.client.clone()),
                ..context.clone()
            };
            let tasks: Vec<_> = CONTROLLERS
                .iter()
                .filter(|def| {
                    only.as_ref()
                        .is_none_or(|o| o.iter().any(|n| n == def.name))
                })
                .map(|def| {
                    tracing::debug!(controller = def.name, "starting");
                    tokio::spawn((def.start)(context.clone()))
                })
                .collect();
            let abort = AbortOnDrop(tasks);
            async move {
                let _abort = abort;
                std::future::pending::<()>().await;
            }
        };
        match election {
            None => {
                tokio::select! {
                    () = start_all() => {}
                    () = shutdown => {}
                }
            }
            Some((identity, config)) => {
                let elector = rkube_lease::LeaderElector::new(
                    client,
                    LEADER_LEASE.0,
                    LEADER_LEASE.1,
                    identity,
                    config,
                );
                elector.run_until(start_all, shutdown).await;
            }
        }
    }
}

/// Aborts its tasks when dropped, so that dropping the manager stops every controller.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
