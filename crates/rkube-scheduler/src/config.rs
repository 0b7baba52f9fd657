//! KubeSchedulerConfiguration (`kubescheduler.config.k8s.io/v1`): profiles, plugins enabled
//! and disabled per extension point (and `multiPoint`), score weights, plugin arguments,
//! `percentageOfNodesToScore` and the pod backoff bounds.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::plugins::{BUILT_IN, DEFAULT_PLUGINS, build};
use crate::profile::Profile;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not YAML or JSON.
    #[error("reading the scheduler configuration: {0}")]
    Parse(String),
    /// A field has a value the scheduler cannot use.
    #[error("invalid scheduler configuration: {0}")]
    Invalid(String),
}

/// One profile's plugins: for each, whether it filters and its score weight (0: does
/// not score).
#[derive(Clone, Debug)]
pub struct ProfileConfig {
    /// The scheduler name pods use to pick this profile.
    pub scheduler_name: String,
    /// Plugins in order: (name, filters, score weight).
    pub plugins: Vec<(String, bool, i64)>,
    /// `pluginConfig` arguments by plugin name.
    pub args: HashMap<String, Value>,
    /// This profile's percentage of nodes to score, overriding the global one.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Whether DefaultPreemption runs.
    pub preemption: bool,
}

impl ProfileConfig {
    /// The default profile under `name`.
    pub fn default_named(name: &str) -> Self {
        ProfileConfig {
            scheduler_name: name.to_owned(),
            plugins: DEFAULT_PLUGINS
                .iter()
                .filter(|(n, _)| !BUILT_IN.contains(n))
                .map(|(n, w)| ((*n).to_owned(), true, *w))
                .collect(),
            args: HashMap::new(),
            percentage_of_nodes_to_score: None,
            preemption: true,
        }
    }
}

/// The scheduler's configuration.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Profiles; pods whose `schedulerName` matches none are left alone.
    pub profiles: Vec<ProfileConfig>,
    /// Percentage of nodes to score (`None`: adaptive).
    pub percentage_of_nodes_to_score: Option<u32>,
    /// The first backoff after a failure.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            profiles: vec![ProfileConfig::default_named("default-scheduler")],
            percentage_of_nodes_to_score: None,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        }
    }
}

fn names(set: &Value, point: &str, field: &str) -> Vec<(String, Option<i64>)> {
    set.get(point)
        .and_then(|p| p.get(field))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    Some((
                        p.get("name")?.as_str()?.to_owned(),
                        p.get("weight").and_then(Value::as_i64),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn default_weight(name: &str) -> i64 {
    DEFAULT_PLUGINS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(1, |(_, w)| (*w).max(1))
}

fn percentage(value: Option<&Value>) -> Result<Option<u32>, ConfigError> {
    match value.and_then(Value::as_i64) {
        None => Ok(None),
        Some(p) if (0..=100).contains(&p) => Ok(if p == 0 { None } else { Some(p as u32) }),
        Some(p) => Err(ConfigError::Invalid(format!(
            "percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]"
        ))),
    }
}

impl SchedulerConfig {
    /// Reads a KubeSchedulerConfiguration (YAML or JSON).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let doc: Value =
            serde_norway::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        if let Some(kind) = doc.get("kind").and_then(Value::as_str)
            && kind != "KubeSchedulerConfiguration"
        {
            return Err(ConfigError::Invalid(format!(
                "kind is {kind:?}, expected KubeSchedulerConfiguration"
            )));
        }
        let mut config = SchedulerConfig {
            percentage_of_nodes_to_score: percentage(doc.get("percentageOfNodesToScore"))?,
            ..Default::default()
        };
        if let Some(s) = doc.get("podInitialBackoffSeconds").and_then(Value::as_u64) {
            config.initial_backoff = Duration::from_secs(s.max(1));
        }
        if let Some(s) = doc.get("podMaxBackoffSeconds").and_then(Value::as_u64) {
            config.max_backoff = Duration::from_secs(s.max(1));
        }
        if let Some(profiles) = doc.get("profiles").and_then(Value::as_array) {
            config.profiles = profiles
                .iter()
                .map(Self::profile)
                .collect::<Result<_, _>>()?;
        }
        let mut seen = std::collections::HashSet::new();
        for p in &config.profiles {
            if !seen.insert(p.scheduler_name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "profiles: duplicate schedulerName {:?}",
                    p.scheduler_name
                )));
            }
        }
        Ok(config)
    }

    fn profile(doc: &Value) -> Result<ProfileConfig, ConfigError> {
        let name = doc
            .get("schedulerName")
            .and_then(Value::as_str)
            .unwrap_or("default-scheduler");
        let mut profile = ProfileConfig::default_named(name);
        profile.percentage_of_nodes_to_score = percentage(doc.get("percentageOfNodesToScore"))?;
        let empty = Value::Null;
        let set = doc.get("plugins").unwrap_or(&empty);
        // multiPoint first: it decides which plugins exist at all.
        for (n, _) in names(set, "multiPoint", "disabled") {
            if n == "*" {
                profile.plugins.clear();
                profile.preemption = false;
            } else {
                profile.plugins.retain(|(p, ..)| *p != n);
                if n == "DefaultPreemption" {
                    profile.preemption = false;
                }
            }
        }
        for (n, weight) in names(set, "multiPoint", "enabled") {
            if n == "DefaultPreemption" {
                profile.preemption = true;
                continue;
            }
            match profile.plugins.iter_mut().find(|(p, ..)| *p == n) {
                Some(entry) => {
                    if let Some(w) = weight {
                        entry.2 = w;
                    }
                }
                None => profile.plugins.push((
                    n.clone(),
                    true,
                    weight.unwrap_or_else(|| default_weight(&n)),
                )),
            }
        }
        for point in ["preFilter", "filter"] {
            for (n, _) in names(set, point, "disabled") {
                for entry in &mut profile.plugins {
                    if n == "*" || entry.0 == n {
                        entry.1 = false;
                    }
                }
            }
            for (n, _) in names(set, point, "enabled") {
                match profile.plugins.iter_mut().find(|(p, ..)| *p == n) {
                    Some(entry) => entry.1 = true,
                    None => profile.plugins.push((n, true, 0)),
                }
            }
        }
        for (n, _) in names(set, "score", "disabled") {
            for entry in &mut profile.plugins {
                if n == "*" || entry.0 == n {
                    entry.2 = 0;
                }
            }
        }
        for (n, weight) in names(set, "score", "enabled") {
            let w = weight.unwrap_or_else(|| default_weight(&n));
            match profile.plugins.iter_mut().find(|(p, ..)| *p == n) {
                Some(entry) => entry.2 = w,
                None => profile.plugins.push((n, false, w)),
            }
        }
        for (n, _) in names(set, "postFilter", "disabled") {
            if n == "*" || n == "DefaultPreemption" {
                profile.preemption = false;
            }
        }
        profile
            .plugins
            .retain(|(n, ..)| !BUILT_IN.contains(&n.as_str()));
        for entry in doc
            .get("pluginConfig")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = entry.get("name").and_then(Value::as_str) {
                profile.args.insert(
                    n.to_owned(),
                    entry.get("args").cloned().unwrap_or(Value::Null),
                );
            }
        }
        Ok(profile)
    }

    /// Builds the profiles' plugins.
    pub fn build_profiles(&self) -> Result<Vec<Profile>, ConfigError> {
        self.profiles
            .iter()
            .map(|p| {
                let mut profile = Profile {
                    scheduler_name: p.scheduler_name.clone(),
                    filters: Vec::new(),
                    scorers: Vec::new(),
                    reservers: Vec::new(),
                    percentage_of_nodes_to_score: p
                        .percentage_of_nodes_to_score
                        .or(self.percentage_of_nodes_to_score),
                    preemption: p.preemption,
                };
                for (name, filters, weight) in &p.plugins {
                    let args = p.args.get(name).cloned().unwrap_or(Value::Null);
                    let plugin = match build(name, &args).map_err(ConfigError::Invalid)? {
                        Some(plugin) => plugin,
                        None => {
                            return Err(ConfigError::Invalid(format!(
                                "plugin {name:?} does not exist"
                            )));
                        }
                    };
                    if *filters && plugin.filters() {
                        profile.filters.push(plugin.clone());
                    }
                    if plugin.reserves() {
                        profile.reservers.push(plugin.clone());
                    }
                    if *weight > 0 && plugin.scores() {
                        profile.scorers.push((plugin, *weight));
                    }
                }
                Ok(profile)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_profile_has_upstream_weights() {
        let profiles = SchedulerConfig::default().build_profiles().unwrap();
        let weights: Vec<(&str, i64)> = profiles[0]
            .scorers
            .iter()
            .map(|(p, w)| (p.name(), *w))
            .collect();
        for want in [
            ("TaintToleration", 3),
            ("NodeAffinity", 2),
            ("NodeResourcesFit", 1),
            ("NodeResourcesBalancedAllocation", 1),
            ("ImageLocality", 1),
        ] {
            assert!(weights.contains(&want), "{want:?} in {weights:?}");
        }
        assert!(profiles[0].preemption);
    }

    #[test]
    fn a_configuration_file_sets_profiles_weights_and_strategies() {
        let config = SchedulerConfig::from_yaml(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
podInitialBackoffSeconds: 2
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  plugins:
    score:
      disabled:
      - name: NodeResourcesBalancedAllocation
      enabled:
      - name: NodeResourcesFit
        weight: 5
    postFilter:
      disabled:
      - name: DefaultPreemption
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
"#,
        )
        .unwrap();
        assert_eq!(config.initial_backoff, Duration::from_secs(2));
        let profiles = config.build_profiles().unwrap();
        assert_eq!(profiles.len(), 2);
        assert_eq!(profiles[1].scheduler_name, "bin-packing");
        assert_eq!(profiles[1].percentage_of_nodes_to_score, Some(30));
        assert!(!profiles[1].preemption);
        let scorers: Vec<(&str, i64)> = profiles[1]
            .scorers
            .iter()
            .map(|(p, w)| (p.name(), *w))
            .collect();
        assert!(scorers.contains(&("NodeResourcesFit", 5)));
        assert!(
            !scorers
                .iter()
                .any(|(n, _)| *n == "NodeResourcesBalancedAllocation")
        );
    }

    #[test]
    fn pod_topology_spread_defaults_decide_whether_workloads_are_watched() {
        let config = SchedulerConfig::from_yaml(
            r#"
profiles:
- schedulerName: default-scheduler
- schedulerName: listed
  pluginConfig:
  - name: PodTopologySpread
    args:
      defaultingType: List
      defaultConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule}
- schedulerName: no-defaults
  pluginConfig:
  - name: PodTopologySpread
    args: {defaultingType: List}
"#,
        )
        .unwrap();
        let watches: Vec<bool> = config
            .build_profiles()
            .unwrap()
            .iter()
            .map(Profile::reads_workloads)
            .collect();
        assert_eq!(watches, vec![true, true, false]);
    }

    #[test]
    fn bad_configurations_are_refused() {
        for text in [
            "kind: Pod",
            "percentageOfNodesToScore: 120",
            "profiles: [{schedulerName: a}, {schedulerName: a}]",
            "profiles: [{plugins: {multiPoint: {enabled: [{name: NoSuchPlugin}]}}}]",
            "profiles: [{pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: Bogus}}}]}]",
            // System defaulting (the default) with constraints given.
            "profiles: [{pluginConfig: [{name: PodTopologySpread, args: {defaultConstraints: [{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]}}]}]",
        ] {
            let result = SchedulerConfig::from_yaml(text).and_then(|c| c.build_profiles());
            assert!(result.is_err(), "{text}");
        }
    }
}
