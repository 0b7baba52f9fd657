//! Which objects a list or watch returns: its label and field selectors.

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use rkube_api::selector::{FieldSelector, LabelSelector};
use serde_json::Value;

use crate::app::App;
use crate::cache::CachedObject;
use crate::request::Query;

/// The selectors of one request.
#[derive(Clone, Debug)]
pub struct ObjectFilter {
    group: &'static str,
    kind: &'static str,
    labels: LabelSelector,
    fields: FieldSelector,
    name: Option<String>,
}

impl ObjectFilter {
    /// Whether nothing is filtered out.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty() && self.name.is_none()
    }

    /// Also require this name.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Whether an object passes.
    pub fn matches(&self, object: &Value) -> bool {
        if let Some(name) = &self.name
            && object["metadata"]["name"].as_str() != Some(name)
        {
            return false;
        }
        self.labels.matches_object(object) && self.fields.matches(self.group, self.kind, object)
    }
}

impl ObjectFilter {
    /// Whether a cached object passes: names and labels are read without parsing the object;
    /// field selectors other than the name parse it.
    pub(crate) fn matches_cached(&self, object: &CachedObject) -> bool {
        if let Some(name) = &self.name
            && object.name() != name
        {
            return false;
        }
        if !self.labels.is_empty() && !self.labels.matches_lookup(|key| object.label(key)) {
            return false;
        }
        if self.fields.is_empty() {
            return true;
        }
        if let Some(name) = self.fields.required_value("metadata.name")
            && object.name() != name
        {
            return false;
        }
        object
            .to_value(object.revision)
            .is_ok_and(|value| self.fields.matches(self.group, self.kind, &value))
    }
}

impl App {
    /// The filter a request's `labelSelector` and `fieldSelector` ask for.
    pub(crate) fn filter(
        &self,
        rt: &ResourceType,
        query: &Query,
    ) -> Result<ObjectFilter, ApiError> {
        let labels = match query.get("labelSelector") {
            Some(s) => LabelSelector::parse(s)?,
            None => LabelSelector::everything(),
        };
        let fields = match query.get("fieldSelector") {
            Some(s) => {
                let f = FieldSelector::parse(s)?;
                f.check_supported(rt.group, rt.kind)?;
                f
            }
            None => FieldSelector::everything(),
        };
        Ok(ObjectFilter {
            group: rt.group,
            kind: rt.kind,
            labels,
            fields,
            name: None,
        })
    }
}
