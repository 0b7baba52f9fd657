//! Controllers: each watches one kind of object, compares what is declared with what is, and
//! acts through the API server like any other client.
//!
//! [`ControllerManager`] runs them all; each controller is started by one entry of
//! [`CONTROLLERS`], so adding a controller is adding a module and a line there.

pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod gc;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod resourcequota;
pub mod serviceaccount;
pub mod settings;
pub mod tainteviction;
pub mod workqueue;

use std::future::Future;
use std::pin::Pin;

pub use gc::GarbageCollector;
pub use namespace::NamespaceController;
pub use serviceaccount::ServiceAccountController;
pub use settings::Settings;

/// What every controller is given: the client it acts through and cluster facts.
#[derive(Clone)]
pub struct Context {
    /// A client acting as the controller manager.
    pub client: kube::Client,
    /// The cluster CA certificate (PEM), published in every namespace.
    pub ca_cert: String,
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
        start: |ctx| Box::pin(NamespaceController::new(ctx.client).run()),
    },
    ControllerDef {
        name: "garbage-collector",
        start: |ctx| Box::pin(GarbageCollector::new(ctx.client).run()),
    },
    ControllerDef {
        name: "serviceaccount",
        start: |ctx| Box::pin(ServiceAccountController::new(ctx.client, ctx.ca_cert).run()),
    },
    ControllerDef {
        name: "endpoint",
        start: |ctx| Box::pin(endpoints::EndpointsController::new(ctx.client).run()),
    },
    ControllerDef {
        name: "endpointslice",
        start: |ctx| Box::pin(endpointslice::EndpointSliceController::new(ctx.client).run()),
    },
    ControllerDef {
        name: "nodeipam",
        start: |ctx| Box::pin(nodeipam::run(ctx.client, ctx.settings)),
    },
    ControllerDef {
        name: "nodelifecycle",
        start: |ctx| {
            Box::pin(nodelifecycle::NodeLifecycleController::new(ctx.client, &ctx.settings).run())
        },
    },
    ControllerDef {
        name: "taint-eviction-controller",
        start: |ctx| Box::pin(tainteviction::TaintEvictionController::new(ctx.client).run()),
    },
    ControllerDef {
        name: "podgc",
        start: |ctx| Box::pin(podgc::PodGcController::new(ctx.client, &ctx.settings).run()),
    },
    ControllerDef {
        name: "resourcequota",
        start: |ctx| {
            Box::pin(resourcequota::ResourceQuotaController::new(ctx.client, &ctx.settings).run())
        },
    },
    ControllerDef {
        name: "disruption",
        start: |ctx| {
            Box::pin(disruption::DisruptionController::new(ctx.client, &ctx.settings).run())
        },
    },
];

/// Runs the controllers.
pub struct ControllerManager {
    context: Context,
}

impl ControllerManager {
    /// A manager acting through `client`.
    pub fn new(client: kube::Client, ca_cert: impl Into<String>) -> Self {
        Self {
            context: Context {
                client,
                ca_cert: ca_cert.into(),
                settings: Settings::default(),
            },
        }
    }

    /// Uses `settings` instead of the defaults.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.context.settings = settings;
        self
    }

    /// Runs every controller until the returned future is dropped.
    pub async fn run(self) {
        let tasks: Vec<_> = CONTROLLERS
            .iter()
            .map(|def| {
                tracing::debug!(controller = def.name, "starting");
                tokio::spawn((def.start)(self.context.clone()))
            })
            .collect();
        let _abort = AbortOnDrop(tasks);
        std::future::pending::<()>().await;
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
