//! The in-tree plugins and the registry that builds them by name.

pub mod fit;
pub mod interpod;
pub mod node;
pub mod spread;
pub mod volumebinding;
pub mod volumerestrictions;

use std::sync::Arc;

use serde_json::Value;

use crate::framework::Plugin;

/// Every plugin of the default profile, in upstream's order, with its default score
/// weight (0 for plugins that do not score). PrioritySort, SchedulingGates,
/// DefaultPreemption and DefaultBinder are built into the queue and the cycle; they are
/// listed so configuration can name them.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0),
    ("VolumeBinding", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
];

/// Plugins that are part of the queue or the cycle rather than filter/score plugins.
pub const BUILT_IN: &[&str] = &[
    "SchedulingGates",
    "PrioritySort",
    "DefaultPreemption",
    "DefaultBinder",
];

/// Builds the plugin `name` with its `args` (the `pluginConfig` entry, or null);
/// `None` for names this scheduler does not have.
pub fn build(name: &str, args: &Value) -> Result<Option<Arc<dyn Plugin>>, String> {
    Ok(Some(match name {
        "NodeUnschedulable" => Arc::new(node::NodeUnschedulable),
        "NodeName" => Arc::new(node::NodeName),
        "TaintToleration" => Arc::new(node::TaintToleration),
        "NodeAffinity" => Arc::new(node::NodeAffinity),
        "NodePorts" => Arc::new(node::NodePorts),
        "NodeResourcesFit" => Arc::new(fit_args(args)?),
        "NodeResourcesBalancedAllocation" => {
            let mut plugin = fit::BalancedAllocation::default();
            if let Some(resources) = args.get("resources").and_then(Value::as_array) {
                plugin.resources = resource_weights(resources);
            }
            Arc::new(plugin)
        }
        "ImageLocality" => Arc::new(node::ImageLocality),
        "InterPodAffinity" => Arc::new(interpod::InterPodAffinity {
            hard_pod_affinity_weight: args
                .get("hardPodAffinityWeight")
                .and_then(Value::as_i64)
                .unwrap_or(1),
        }),
        "PodTopologySpread" => Arc::new(spread::PodTopologySpread::from_args(args)?),
        "VolumeRestrictions" => Arc::new(volumerestrictions::VolumeRestrictions),
        "VolumeBinding" => {
            let mut plugin = volumebinding::VolumeBinding::default();
            match args.get("bindTimeoutSeconds").map(Value::as_u64) {
                None => {}
                Some(Some(s)) if s > 0 => plugin.bind_timeout = std::time::Duration::from_secs(s),
                Some(_) => {
                    return Err(
                        "VolumeBinding: bindTimeoutSeconds must be a positive number".into(),
                    );
                }
            }
            Arc::new(plugin)
        }
        _ => return Ok(None),
    }))
}

fn resource_weights(list: &[Value]) -> Vec<(String, i64)> {
    list.iter()
        .filter_map(|r| {
            Some((
                r.get("name")?.as_str()?.to_owned(),
                r.get("weight").and_then(Value::as_i64).unwrap_or(1),
            ))
        })
        .collect()
}

/// NodeResourcesFitArgs: `scoringStrategy.type` (LeastAllocated, MostAllocated,
/// RequestedToCapacityRatio), `resources` and `requestedToCapacityRatio.shape`.
fn fit_args(args: &Value) -> Result<fit::NodeResourcesFit, String> {
    let mut plugin = fit::NodeResourcesFit::default();
    let Some(strategy) = args.get("scoringStrategy") else {
        return Ok(plugin);
    };
    if let Some(resources) = strategy.get("resources").and_then(Value::as_array) {
        plugin.resources = resource_weights(resources);
    }
    plugin.strategy = match strategy.get("type").and_then(Value::as_str) {
        None | Some("LeastAllocated") => fit::ScoringStrategy::LeastAllocated,
        Some("MostAllocated") => fit::ScoringStrategy::MostAllocated,
        Some("RequestedToCapacityRatio") => {
            let shape: Vec<(i64, i64)> = strategy
                .pointer("/requestedToCapacityRatio/shape")
                .and_then(Value::as_array)
                .map(|points| {
                    points
                        .iter()
                        .map(|p| {
                            (
                                p.get("utilization").and_then(Value::as_i64).unwrap_or(0),
                                p.get("score").and_then(Value::as_i64).unwrap_or(0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if shape.is_empty() {
                return Err("NodeResourcesFit: requestedToCapacityRatio.shape is required".into());
            }
            fit::ScoringStrategy::RequestedToCapacityRatio(shape)
        }
        Some(other) => {
            return Err(format!(
                "NodeResourcesFit: unknown scoring strategy {other:?}"
            ));
        }
    };
    Ok(plugin)
}
