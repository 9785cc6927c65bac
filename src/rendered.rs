//! What a render produces, for every kind: new resources (one file each in the overlay) and
//! patches on base objects, plus small helpers every kind uses on Kubernetes objects. Kinds build
//! these; `output` writes them as an overlay or applies them to the base as a stream.

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use crate::base::BaseObject;
use crate::traffic::ROUTE_KINDS;

/// `(kind, index)` of VirtualService routes (`http`, 0).
pub type RouteRefs = Vec<(&'static str, usize)>;

/// Argo CD applies lower waves first and waits for them to be healthy: what a route depends
/// on (subsets, the stable copy) goes before the VirtualService that uses it.
pub const SYNC_WAVE: (&str, &str) = ("argocd.argoproj.io/sync-wave", "-1");

/// A new object, written to the overlay as its own file.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub file: String,
    /// What it is made from, for the file's header comment.
    pub from: String,
    pub object: Value,
}

/// The object a patch applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl Target {
    pub fn of(o: &BaseObject) -> Target {
        Target {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            namespace: o.namespace().map(str::to_string),
        }
    }

    pub fn matches(&self, v: &Value) -> bool {
        let s = |p: &str| v.at(p).and_then(Value::as_str);
        s("/kind") == Some(&self.kind)
            && s("/metadata/name") == Some(&self.name)
            && s("/metadata/namespace") == self.namespace.as_deref()
    }

    /// `metadata` naming the target, for merge patches.
    pub fn metadata(&self) -> Value {
        let mut m = json!({ "name": self.name });
        if let (Some(ns), Some(obj)) = (&self.namespace, m.as_object_mut()) {
            obj.insert("namespace".into(), Value::String(ns.clone()));
        }
        m
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PatchBody {
    /// A strategic merge patch that only touches maps, so it means the same as a JSON merge
    /// patch (RFC 7386); holds the whole patch object.
    Merge(Value),
    /// RFC 6902 operations.
    Json(Vec<Value>),
    /// The target is removed from the output (`$patch: delete`); Argo CD prunes it.
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    pub file: String,
    pub from: String,
    pub target: Target,
    pub body: PatchBody,
}

impl Patch {
    /// A merge patch on `target` whose body below `metadata` is `fields`.
    pub fn merge(file: String, from: String, target: Target, fields: Value) -> Patch {
        let mut obj = json!({
            "apiVersion": target.api_version,
            "kind": target.kind,
            "metadata": target.metadata(),
        });
        if let (Some(o), Some(f)) = (obj.as_object_mut(), fields.as_object()) {
            for (k, v) in f {
                // `metadata` fields join the target's name and namespace.
                match (o.get_mut(k).and_then(Value::as_object_mut), v.as_object()) {
                    (Some(mine), Some(theirs)) if k == "metadata" => {
                        mine.extend(theirs.clone());
                    }
                    _ => {
                        o.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        Patch {
            file,
            from,
            target,
            body: PatchBody::Merge(obj),
        }
    }
}

/// Everything one environment's stage adds to its base.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rendered {
    pub resources: Vec<Resource>,
    pub patches: Vec<Patch>,
}

/// Every backendRef of every rule of an HTTPRoute.
pub fn http_route_backend_refs(hr: &Value) -> impl Iterator<Item = &Value> {
    hr.at("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|r| {
            r.get("backendRefs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
}

/// Whether a route destination host names `service` (short, namespaced or full name).
pub fn is_host_of(service: &BaseObject, host: &str) -> bool {
    crate::traffic::host_names(
        host,
        &service.name,
        service.namespace(),
        service.namespace(),
    )
}

/// `(kind, index)` of every http/tcp/tls route of a VirtualService with a destination whose
/// host satisfies `is_host`.
pub fn routes_to(vs: &Value, is_host: impl Fn(&str) -> bool) -> RouteRefs {
    let mut found = Vec::new();
    for kind in ROUTE_KINDS {
        let routes = vs.at(&format!("/spec/{kind}")).and_then(Value::as_array);
        for (i, r) in routes.into_iter().flatten().enumerate() {
            let destinations = r
                .get("route")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            if destinations
                .filter_map(|d| d.at("/destination/host").and_then(Value::as_str))
                .any(&is_host)
            {
                found.push((kind, i));
            }
        }
    }
    found
}

/// Removes fields the cluster sets, which must not be copied into a new object.
pub fn strip_server_fields(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "ownerReferences",
        ] {
            m.remove(k);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            a.remove("deployment.kubernetes.io/revision");
        }
    }
}
