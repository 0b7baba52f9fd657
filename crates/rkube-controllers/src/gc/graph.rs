//! The garbage collector's dependency graph: every object the monitors have seen (or that a
//! dependent names as its owner), by uid, with its owners and dependents. Events from the
//! monitors update it and say which objects must be looked at again, as upstream's
//! GraphBuilder (`pkg/controller/garbagecollector/graph_builder.go`) does. Pure: no I/O.

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Where an object lives: enough to GET it, and its uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// `group/version`, or `version` for the core group.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// The namespace; `None` for a cluster-scoped object. An owner known only from a
    /// reference has its dependent's namespace.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// The uid.
    pub uid: String,
}

/// The group of an `apiVersion` (empty for the core group).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

impl Identity {
    /// The group.
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }

    /// Whether `reference` names this object: same uid, group, kind and name (the version
    /// may differ, as one object is served under several).
    pub fn is_named_by(&self, reference: &OwnerReference) -> bool {
        reference.uid == self.uid
            && group_of(&reference.api_version) == self.group()
            && reference.kind == self.kind
            && reference.name == self.name
    }

    /// The object a dependent in `namespace` names with `reference`.
    pub fn of_owner(reference: &OwnerReference, namespace: Option<&str>) -> Self {
        Self {
            api_version: reference.api_version.clone(),
            kind: reference.kind.clone(),
            namespace: namespace.map(str::to_owned),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
        }
    }
}

/// What a monitor saw of one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The object.
    pub identity: Identity,
    /// Its ownerReferences.
    pub owners: Vec<OwnerReference>,
    /// Whether its deletionTimestamp is set.
    pub being_deleted: bool,
    /// Whether it carries the `orphan` finalizer.
    pub orphan_finalizer: bool,
    /// Whether it carries the `foregroundDeletion` finalizer.
    pub foreground_finalizer: bool,
}

/// A change to the graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An object was added or changed (or listed).
    Observed(Observed),
    /// A monitor saw an object deleted.
    Deleted(Identity),
    /// A worker found no object with these coordinates and uid (a live GET said so).
    VerifiedAbsent(Identity),
    /// A monitor (re)listed every object of one kind: the others of that kind are gone.
    Listed {
        /// The group listed.
        group: String,
        /// The kind listed.
        kind: String,
        /// The uids listed.
        uids: HashSet<String>,
    },
}

/// What the graph asks the collector's workers to do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Work {
    /// Look at the object with this uid: it may be garbage, an owner deleting its dependents
    /// first, or an owner known only from a reference whose existence must be checked
    /// (upstream's attemptToDelete queue).
    AttemptToDelete(String),
    /// Release the dependents of this owner, which is deleted with the `orphan` finalizer
    /// (upstream's attemptToOrphan queue).
    AttemptToOrphan(String),
}

/// One object in the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The object: as observed, or as a dependent names it while it is virtual.
    pub identity: Identity,
    /// Its ownerReferences as last observed.
    pub owners: Vec<OwnerReference>,
    /// The uids of the objects that name it as an owner.
    pub dependents: BTreeSet<String>,
    /// Whether a monitor has seen it; a node only named by dependents is virtual.
    pub observed: bool,
    /// Whether its deletion has begun.
    pub being_deleted: bool,
    /// Whether it is being deleted in the foreground (waiting for its dependents).
    pub deleting_dependents: bool,
    /// Whether it was last seen being deleted with the `orphan` finalizer.
    orphaning: bool,
}

impl Node {
    /// The reference this node's object makes to the owner with `uid`, if any.
    pub fn owner_reference(&self, uid: &str) -> Option<&OwnerReference> {
        self.owners.iter().find(|r| r.uid == uid)
    }
}

/// Objects by uid, with their ownership edges.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

impl Graph {
    /// The node with `uid`.
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Applies one event; returns the work it calls for, each item once.
    pub fn apply(&mut self, event: Event) -> Vec<Work> {
        let mut work = Vec::new();
        match event {
            Event::Observed(observed) => self.observe(observed, &mut work),
            Event::Deleted(identity) => {
                if self.nodes.contains_key(&identity.uid) {
                    self.remove(&identity.uid, &mut work);
                }
            }
            Event::VerifiedAbsent(identity) => self.verified_absent(&identity, &mut work),
            Event::Listed { group, kind, uids } => {
                let gone: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(uid, node)| {
                        node.observed
                            && node.identity.kind == kind
                            && node.identity.group() == group
                            && !uids.contains(*uid)
                    })
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in gone {
                    self.remove(&uid, &mut work);
                }
            }
        }
        work.sort();
        work.dedup();
        work
    }

    fn observe(&mut self, observed: Observed, work: &mut Vec<Work>) {
        let uid = observed.identity.uid.clone();
        let Some(node) = self.nodes.get_mut(&uid) else {
            self.nodes.insert(
                uid.clone(),
                Node {
                    identity: observed.identity.clone(),
                    owners: observed.owners.clone(),
                    dependents: BTreeSet::new(),
                    observed: true,
                    being_deleted: observed.being_deleted,
                    deleting_dependents: false,
                    orphaning: false,
                },
            );
            self.add_to_owners(&uid, &observed.owners, work);
            self.transitions(&uid, &observed, work);
            return;
        };
        if !node.observed {
            node.observed = true;
            if node.identity != observed.identity {
                // Dependents that named this uid with other coordinates may refer to
                // something that does not exist: they are checked (a bad child seen before its
                // good parent; the other order is caught when the child is added).
                let dependents: Vec<String> = node.dependents.iter().cloned().collect();
                node.identity = observed.identity.clone();
                for dependent in dependents {
                    let names_it = self
                        .nodes
                        .get(&dependent)
                        .and_then(|d| d.owner_reference(&uid))
                        .is_some_and(|r| observed.identity.is_named_by(r));
                    if !names_it {
                        work.push(Work::AttemptToDelete(dependent));
                    }
                }
            }
        }
        let Some(node) = self.nodes.get_mut(&uid) else {
            return;
        };
        node.being_deleted |= observed.being_deleted;
        if node.owners != observed.owners {
            let before = std::mem::replace(&mut node.owners, observed.owners.clone());
            let added: Vec<OwnerReference> = observed
                .owners
                .iter()
                .filter(|r| !before.iter().any(|b| b.uid == r.uid))
                .cloned()
                .collect();
            let removed: Vec<OwnerReference> = before
                .iter()
                .filter(|b| !observed.owners.iter().any(|r| r.uid == b.uid))
                .cloned()
                .collect();
            // An owner waiting for its dependents may be waiting for this one no more: the
            // reference went, or stopped blocking.
            let unblocked = before.iter().filter(|b| {
                b.block_owner_deletion == Some(true)
                    && observed
                        .owners
                        .iter()
                        .find(|r| r.uid == b.uid)
                        .is_none_or(|r| r.block_owner_deletion != Some(true))
            });
            for owner in unblocked {
                if self
                    .nodes
                    .get(&owner.uid)
                    .is_some_and(|o| o.deleting_dependents)
                {
                    work.push(Work::AttemptToDelete(owner.uid.clone()));
                }
            }
            self.add_to_owners(&uid, &added, work);
            self.remove_from_owners(&uid, &removed);
        }
        self.transitions(&uid, &observed, work);
    }

    /// Deletion starting with the `orphan` or `foregroundDeletion` finalizer.
    fn transitions(&mut self, uid: &str, observed: &Observed, work: &mut Vec<Work>) {
        let Some(node) = self.nodes.get_mut(uid) else {
            return;
        };
        let orphaning = observed.being_deleted && observed.orphan_finalizer;
        if orphaning && !node.orphaning {
            work.push(Work::AttemptToOrphan(uid.to_owned()));
        }
        node.orphaning = orphaning;
        if observed.being_deleted && observed.foreground_finalizer && !node.deleting_dependents {
            node.deleting_dependents = true;
            work.extend(node.dependents.iter().cloned().map(Work::AttemptToDelete));
            work.push(Work::AttemptToDelete(uid.to_owned()));
        }
    }

    /// Records `uid` as a dependent of each of `owners`; an owner not in the graph is added as
    /// a virtual node, to be checked. A reference that disagrees with the owner the graph
    /// knows (another namespace, other coordinates) has its dependent checked.
    fn add_to_owners(&mut self, uid: &str, owners: &[OwnerReference], work: &mut Vec<Work>) {
        let Some(namespace) = self.nodes.get(uid).map(|n| n.identity.namespace.clone()) else {
            return;
        };
        let mut suspicious = false;
        for reference in owners {
            match self.nodes.get_mut(&reference.uid) {
                None => {
                    let identity = Identity::of_owner(reference, namespace.as_deref());
                    self.nodes.insert(
                        reference.uid.clone(),
                        Node {
                            identity,
                            owners: Vec::new(),
                            dependents: BTreeSet::from([uid.to_owned()]),
                            observed: false,
                            being_deleted: false,
                            deleting_dependents: false,
                            orphaning: false,
                        },
                    );
                    work.push(Work::AttemptToDelete(reference.uid.clone()));
                }
                Some(owner) => {
                    owner.dependents.insert(uid.to_owned());
                    let owner_namespace = &owner.identity.namespace;
                    suspicious |= if owner_namespace.is_some() {
                        *owner_namespace != namespace || !owner.identity.is_named_by(reference)
                    } else {
                        !owner.identity.is_named_by(reference)
                            || (!owner.observed && *owner_namespace != namespace)
                    };
                }
            }
        }
        if suspicious {
            work.push(Work::AttemptToDelete(uid.to_owned()));
        }
    }

    /// Forgets `uid` as a dependent of `owners`; a virtual owner left without dependents is
    /// forgotten too (nothing names it any more).
    fn remove_from_owners(&mut self, uid: &str, owners: &[OwnerReference]) {
        for reference in owners {
            let Some(owner) = self.nodes.get_mut(&reference.uid) else {
                continue;
            };
            owner.dependents.remove(uid);
            if !owner.observed && owner.dependents.is_empty() {
                self.nodes.remove(&reference.uid);
            }
        }
    }

    /// Removes a node: its dependents may now be garbage, and owners deleting their
    /// dependents may now be done.
    fn remove(&mut self, uid: &str, work: &mut Vec<Work>) {
        let Some(node) = self.nodes.remove(uid) else {
            return;
        };
        self.remove_from_owners(uid, &node.owners);
        work.extend(node.dependents.into_iter().map(Work::AttemptToDelete));
        for owner in &node.owners {
            if self
                .nodes
                .get(&owner.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                work.push(Work::AttemptToDelete(owner.uid.clone()));
            }
        }
    }

    /// A worker found nothing at `identity`.
    fn verified_absent(&mut self, absent: &Identity, work: &mut Vec<Work>) {
        let Some(node) = self.nodes.get(&absent.uid) else {
            return;
        };
        let dependents: Vec<(String, bool)> = node
            .dependents
            .iter()
            .map(|d| {
                let names_absent = self
                    .nodes
                    .get(d)
                    .and_then(|n| n.owner_reference(&absent.uid))
                    .is_some_and(|r| absent.is_named_by(r));
                (d.clone(), names_absent)
            })
            .collect();
        if node.observed {
            if node.identity == *absent {
                self.remove(&absent.uid, work);
            } else {
                // A real object has this uid under other coordinates: only the dependents
                // that named the absent coordinates are checked.
                work.extend(
                    dependents
                        .into_iter()
                        .filter(|(_, names_absent)| *names_absent)
                        .map(|(d, _)| Work::AttemptToDelete(d)),
                );
            }
            return;
        }
        // Virtual: if some dependents name this uid with other coordinates, those are checked
        // next, and the dependents that named the absent ones are looked at now.
        let other = dependents
            .iter()
            .filter(|(_, names_absent)| !names_absent)
            .find_map(|(d, _)| {
                let dependent = self.nodes.get(d)?;
                let reference = dependent.owner_reference(&absent.uid)?;
                Some(Identity::of_owner(
                    reference,
                    dependent.identity.namespace.as_deref(),
                ))
            });
        match other {
            Some(identity) if identity != *absent => {
                if let Some(node) = self.nodes.get_mut(&absent.uid) {
                    node.identity = identity;
                }
                work.push(Work::AttemptToDelete(absent.uid.clone()));
                work.extend(
                    dependents
                        .into_iter()
                        .filter(|(_, names_absent)| *names_absent)
                        .map(|(d, _)| Work::AttemptToDelete(d)),
                );
            }
            _ => self.remove(&absent.uid, work),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, name: &str, uid: &str) -> Identity {
        Identity {
            api_version: if kind == "ReplicaSet" {
                "apps/v1"
            } else {
                "v1"
            }
            .into(),
            kind: kind.into(),
            namespace: Some("ns".into()),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn reference(owner: &Identity, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: block.then_some(true),
        }
    }

    fn seen(identity: &Identity, owners: Vec<OwnerReference>) -> Event {
        Event::Observed(Observed {
            identity: identity.clone(),
            owners,
            being_deleted: false,
            orphan_finalizer: false,
            foreground_finalizer: false,
        })
    }

    fn deleting(identity: &Identity, orphan: bool, foreground: bool) -> Event {
        Event::Observed(Observed {
            identity: identity.clone(),
            owners: Vec::new(),
            being_deleted: true,
            orphan_finalizer: orphan,
            foreground_finalizer: foreground,
        })
    }

    fn delete(uid: &str) -> Work {
        Work::AttemptToDelete(uid.into())
    }

    #[test]
    fn an_owner_and_its_dependent_are_linked_whichever_is_seen_first() {
        let (rs, pod) = (id("ReplicaSet", "web", "rs"), id("Pod", "web-1", "pod"));
        let mut graph = Graph::default();
        assert_eq!(graph.apply(seen(&rs, vec![])), vec![]);
        assert_eq!(graph.apply(seen(&pod, vec![reference(&rs, true)])), vec![]);
        assert_eq!(
            graph.node("rs").unwrap().dependents,
            BTreeSet::from(["pod".into()])
        );

        let mut graph = Graph::default();
        assert_eq!(
            graph.apply(seen(&pod, vec![reference(&rs, true)])),
            vec![delete("rs")],
            "an owner known only from a reference is checked"
        );
        assert!(!graph.node("rs").unwrap().observed);
        assert_eq!(graph.apply(seen(&rs, vec![])), vec![]);
        let owner = graph.node("rs").unwrap();
        assert!(owner.observed);
        assert_eq!(owner.dependents.len(), 1);
    }

    #[test]
    fn a_deleted_owner_has_its_dependents_looked_at() {
        let (rs, pod) = (id("ReplicaSet", "web", "rs"), id("Pod", "web-1", "pod"));
        let mut graph = Graph::default();
        graph.apply(seen(&rs, vec![]));
        graph.apply(seen(&pod, vec![reference(&rs, false)]));
        assert_eq!(graph.apply(Event::Deleted(rs)), vec![delete("pod")]);
        assert!(graph.node("rs").is_none());
        assert_eq!(graph.apply(Event::Deleted(pod)), vec![]);
        assert!(graph.is_empty());
    }

    #[test]
    fn an_absent_virtual_owner_goes_and_its_dependents_are_looked_at() {
        let (rs, pod) = (id("ReplicaSet", "web", "rs"), id("Pod", "web-1", "pod"));
        let mut graph = Graph::default();
        graph.apply(seen(&pod, vec![reference(&rs, false)]));
        assert_eq!(graph.apply(Event::VerifiedAbsent(rs)), vec![delete("pod")]);
        assert!(graph.node("rs").is_none());
        assert!(graph.node("pod").is_some());
    }

    #[test]
    fn foreground_deletion_looks_at_every_dependent_and_then_the_owner_again() {
        let rs = id("ReplicaSet", "web", "rs");
        let (a, b) = (id("Pod", "web-1", "a"), id("Pod", "web-2", "b"));
        let mut graph = Graph::default();
        graph.apply(seen(&rs, vec![]));
        graph.apply(seen(&a, vec![reference(&rs, true)]));
        graph.apply(seen(&b, vec![reference(&rs, true)]));
        assert_eq!(
            graph.apply(deleting(&rs, false, true)),
            vec![delete("a"), delete("b"), delete("rs")]
        );
        assert!(graph.node("rs").unwrap().deleting_dependents);
        assert_eq!(
            graph.apply(deleting(&rs, false, true)),
            vec![],
            "only the start of the deletion counts"
        );
        assert_eq!(
            graph.apply(Event::Deleted(a)),
            vec![delete("rs")],
            "the owner checks whether it still waits"
        );
        // A dependent that stops blocking lets the owner look again too.
        assert_eq!(
            graph.apply(seen(&b, vec![reference(&rs, false)])),
            vec![delete("rs")]
        );
    }

    #[test]
    fn orphaning_starts_once() {
        let rs = id("ReplicaSet", "web", "rs");
        let mut graph = Graph::default();
        graph.apply(seen(&rs, vec![]));
        assert_eq!(
            graph.apply(deleting(&rs, true, false)),
            vec![Work::AttemptToOrphan("rs".into())]
        );
        assert_eq!(graph.apply(deleting(&rs, true, false)), vec![]);
    }

    #[test]
    fn changed_owner_references_move_the_dependent() {
        let (a, b, pod) = (
            id("ConfigMap", "a", "a"),
            id("ConfigMap", "b", "b"),
            id("Pod", "p", "pod"),
        );
        let mut graph = Graph::default();
        graph.apply(seen(&a, vec![]));
        graph.apply(seen(&b, vec![]));
        graph.apply(seen(&pod, vec![reference(&a, false)]));
        graph.apply(seen(&pod, vec![reference(&b, false)]));
        assert!(graph.node("a").unwrap().dependents.is_empty());
        assert_eq!(graph.node("b").unwrap().dependents.len(), 1);
        // A virtual owner nothing names any more is forgotten.
        let ghost = id("ConfigMap", "ghost", "ghost");
        graph.apply(seen(&pod, vec![reference(&ghost, false)]));
        assert!(graph.node("ghost").is_some());
        graph.apply(seen(&pod, vec![]));
        assert!(graph.node("ghost").is_none());
    }

    #[test]
    fn a_reference_with_the_wrong_coordinates_is_checked() {
        let owner = id("ConfigMap", "real", "u1");
        let mut wrong = reference(&owner, false);
        wrong.name = "other".into();
        let pod = id("Pod", "p", "pod");
        let mut graph = Graph::default();
        // Good parent first, then the bad child: the child is checked.
        graph.apply(seen(&owner, vec![]));
        assert_eq!(
            graph.apply(seen(&pod, vec![wrong.clone()])),
            vec![delete("pod")]
        );

        // Bad child first: the virtual owner has the child's coordinates; when the real owner
        // shows up under others, the child is checked.
        let mut graph = Graph::default();
        assert_eq!(
            graph.apply(seen(&pod, vec![wrong.clone()])),
            vec![delete("u1")]
        );
        assert_eq!(graph.apply(seen(&owner, vec![])), vec![delete("pod")]);

        // A GET that finds nothing at the wrong coordinates leaves the real owner in place
        // and has the child checked.
        let absent = Identity::of_owner(&wrong, Some("ns"));
        assert_eq!(
            graph.apply(Event::VerifiedAbsent(absent)),
            vec![delete("pod")]
        );
        assert!(graph.node("u1").is_some());
    }

    #[test]
    fn dependents_naming_a_virtual_owner_differently_are_sorted_out() {
        let owner = id("ConfigMap", "right", "u1");
        let mut wrong = reference(&owner, false);
        wrong.name = "wrong".into();
        let (good, bad) = (id("Pod", "good", "good"), id("Pod", "bad", "bad"));
        let mut graph = Graph::default();
        graph.apply(seen(&bad, vec![wrong.clone()]));
        graph.apply(seen(&good, vec![reference(&owner, false)]));
        // Nothing at the bad child's coordinates: the bad child is looked at, and the owner is
        // checked again at the other coordinates.
        let absent = Identity::of_owner(&wrong, Some("ns"));
        assert_eq!(
            graph.apply(Event::VerifiedAbsent(absent)),
            vec![delete("bad"), delete("u1")]
        );
        assert_eq!(graph.node("u1").unwrap().identity.name, "right");
    }

    #[test]
    fn a_relist_removes_what_it_no_longer_shows() {
        let (a, b) = (id("ConfigMap", "a", "a"), id("ConfigMap", "b", "b"));
        let pod = id("Pod", "p", "pod");
        let mut graph = Graph::default();
        graph.apply(seen(&a, vec![]));
        graph.apply(seen(&b, vec![]));
        graph.apply(seen(&pod, vec![reference(&b, false)]));
        let work = graph.apply(Event::Listed {
            group: String::new(),
            kind: "ConfigMap".into(),
            uids: HashSet::from(["a".to_owned()]),
        });
        assert_eq!(work, vec![delete("pod")]);
        assert!(graph.node("b").is_none());
        assert!(graph.node("a").is_some() && graph.node("pod").is_some());
    }
}
