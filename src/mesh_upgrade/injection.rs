//! Which Istio control plane revision injects each workload, and which istiod each revision
//! tag sends to, read from a rendered stream alone (no plan, no renderer types): the sidecar
//! injector webhooks in the stream are evaluated as the API server does (namespaceSelector and
//! objectSelector against the namespace's and the pod template's labels), and each webhook's
//! target is read from `clientConfig.service.name` (`istiod-<revision>`) or `clientConfig.url`.
//! Labels no webhook in the stream serves fall back to the revision's own injector, installed
//! with istiod outside the stream (`istio.io/rev: <revision>`, `istio-injection=enabled` for
//! the `default` revision). Used to restart exactly what moves, to say when the old revision
//! can be uninstalled, and by the stage invariants to compare revisions before and after.

use crate::pointer::Pointer as _;
use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::plan_file::Labels;
use crate::selector;

/// The revision of an installation without `revision` (its istiod Service is `istiod`).
pub const DEFAULT_REVISION: &str = "default";
pub const REV: &str = "istio.io/rev";
pub const TAG: &str = "istio.io/tag";
pub const INJECTION: &str = "istio-injection";
pub const INJECT: &str = "sidecar.istio.io/inject";
/// The prefix of a revision tag's MutatingWebhookConfiguration (`istioctl tag generate`).
pub const TAG_WEBHOOK_PREFIX: &str = "istio-revision-tag-";

/// The kinds whose pod template is injected, and where that template is.
const WORKLOADS: [(&str, &str); 7] = [
    ("Deployment", "/spec/template"),
    ("StatefulSet", "/spec/template"),
    ("DaemonSet", "/spec/template"),
    ("ReplicaSet", "/spec/template"),
    ("Job", "/spec/template"),
    ("Rollout", "/spec/template"),
    ("CronJob", "/spec/jobTemplate/spec/template"),
];

/// Where one injector webhook sends its admission requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookTarget {
    /// The webhook's name, e.g. `rev.namespace.sidecar-injector.istio.io`.
    pub webhook: String,
    /// The revision it reaches (`None`: its URL names no istiod the stream knows).
    pub revision: Option<String>,
    /// How it was read: `service istiod-1-22-1` or `url https://…`.
    pub by: String,
}

/// A revision tag: its webhook configuration and where each of its webhooks goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRoute {
    pub tag: String,
    /// The MutatingWebhookConfiguration's name.
    pub object: String,
    /// Its `istio.io/rev` label (what `istioctl tag list` shows; the webhooks decide).
    pub label: Option<String>,
    pub webhooks: Vec<HookTarget>,
}

impl TagRoute {
    /// The revisions its webhooks reach (resolved ones), sorted.
    pub fn revisions(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self
            .webhooks
            .iter()
            .filter_map(|w| w.revision.as_deref())
            .collect();
        set.into_iter().collect()
    }

    /// Whether any of its webhooks, or its label, is on `revision`.
    pub fn touches(&self, revision: &str) -> bool {
        self.label.as_deref() == Some(revision) || self.revisions().contains(&revision)
    }

    /// The one revision every webhook reaches and the label names, if they agree.
    pub fn revision(&self) -> Option<&str> {
        let all_resolved = self.webhooks.iter().all(|w| w.revision.is_some());
        match self.revisions().as_slice() {
            [one] if all_resolved && self.label.as_deref().is_none_or(|l| l == *one) => Some(one),
            _ => None,
        }
    }
}

/// What the injector does with a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "injected", rename_all = "kebab-case")]
pub enum Injected {
    /// Injected by this revision; `via` says through which webhook or label.
    Revision { revision: String, via: String },
    /// A webhook matches whose URL names no revision the stream knows.
    Unresolved { via: String },
    /// Webhooks of several revisions match: each would inject.
    Several { revisions: Vec<String> },
    /// Not injected, and why.
    Not { why: String },
}

impl Injected {
    pub fn revision(&self) -> Option<&str> {
        match self {
            Injected::Revision { revision, .. } => Some(revision),
            _ => None,
        }
    }

    /// Whether `revision` is (or may be) what injects it.
    pub fn involves(&self, revision: &str) -> bool {
        match self {
            Injected::Revision { revision: r, .. } => r == revision,
            Injected::Several { revisions } => revisions.iter().any(|r| r == revision),
            Injected::Unresolved { .. } => true,
            Injected::Not { .. } => false,
        }
    }

    /// In words, e.g. `1-23-1 (tag prod-stable)`.
    pub fn text(&self) -> String {
        match self {
            Injected::Revision { revision, via } => format!("{revision} ({via})"),
            Injected::Unresolved { via } => format!("unknown ({via})"),
            Injected::Several { revisions } => {
                format!("several revisions at once: {}", revisions.join(", "))
            }
            Injected::Not { why } => format!("not injected ({why})"),
        }
    }
}

/// A workload's pod template and what injects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadInjection {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(flatten)]
    pub injected: Injected,
}

impl WorkloadInjection {
    pub fn id(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What a pod without injection labels of its own gets in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceInjection {
    pub name: String,
    #[serde(flatten)]
    pub injected: Injected,
}

/// The injection model of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Injection {
    pub tags: Vec<TagRoute>,
    pub namespaces: Vec<NamespaceInjection>,
    pub workloads: Vec<WorkloadInjection>,
}

struct Hook<'a> {
    config: String,
    tag: Option<String>,
    target: HookTarget,
    namespace_selector: Option<&'a Value>,
    object_selector: Option<&'a Value>,
}

fn kind(o: &Value) -> &str {
    o.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn name(o: &Value) -> &str {
    o.at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn label<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.at("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// The revision an istiod Service name stands for: `istiod` → default, `istiod-<rev>` → rev.
pub fn revision_of_service(service: &str) -> Option<String> {
    if service == "istiod" {
        return Some(DEFAULT_REVISION.into());
    }
    service
        .strip_prefix("istiod-")
        .filter(|r| !r.is_empty() && *r != "remote" && !r.starts_with("revision-tag-"))
        .map(str::to_string)
}

/// The host of a URL (`https://host:port/path` → `host`).
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', ':', '?']).unwrap_or(rest.len());
    rest.get(..end).unwrap_or(rest)
}

/// Whether a MutatingWebhookConfiguration is a revision tag's, and which tag.
pub fn tag_of(o: &Value) -> Option<String> {
    label(o, TAG)
        .map(str::to_string)
        .or_else(|| name(o).strip_prefix(TAG_WEBHOOK_PREFIX).map(str::to_string))
}

fn is_injector(hook: &Value) -> bool {
    hook.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.ends_with("sidecar-injector.istio.io"))
}

/// The URL of every revision's own injector webhook in the stream (not a tag's), by revision.
fn canonical_urls(objects: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for o in objects
        .iter()
        .filter(|o| kind(o) == "MutatingWebhookConfiguration" && tag_of(o).is_none())
    {
        let Some(rev) = label(o, REV) else { continue };
        for h in o
            .get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(u) = h.at("/clientConfig/url").and_then(Value::as_str) {
                out.push((u.to_string(), rev.to_string()));
            }
        }
    }
    out
}

/// Where a webhook's `clientConfig` sends requests, as a revision.
pub fn target_of(hook: &Value, canonical: &[(String, String)]) -> HookTarget {
    let webhook = hook
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(s) = hook
        .at("/clientConfig/service/name")
        .and_then(Value::as_str)
    {
        return HookTarget {
            webhook,
            revision: revision_of_service(s),
            by: format!("service {s}"),
        };
    }
    if let Some(u) = hook.at("/clientConfig/url").and_then(Value::as_str) {
        let revision = canonical
            .iter()
            .find(|(url, _)| url == u)
            .map(|(_, r)| r.clone())
            .or_else(|| {
                let host = url_host(u);
                revision_of_service(host.split('.').next().unwrap_or(host))
            });
        return HookTarget {
            webhook,
            revision,
            by: format!("url {u}"),
        };
    }
    HookTarget {
        webhook,
        revision: None,
        by: "no clientConfig".into(),
    }
}

fn hooks(objects: &[Value]) -> Vec<Hook<'_>> {
    let canonical = canonical_urls(objects);
    let mut out = Vec::new();
    for o in objects
        .iter()
        .filter(|o| kind(o) == "MutatingWebhookConfiguration")
    {
        for h in o
            .get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|h| is_injector(h))
        {
            out.push(Hook {
                config: name(o).to_string(),
                tag: tag_of(o),
                target: target_of(h, &canonical),
                namespace_selector: h.get("namespaceSelector"),
                object_selector: h.get("objectSelector"),
            });
        }
    }
    out
}

/// The labels a namespace has in the stream (with the `kubernetes.io/metadata.name` label the
/// API server sets on every namespace).
fn namespace_labels(objects: &[Value], ns: &str) -> Labels {
    let mut l = objects
        .iter()
        .find(|o| kind(o) == "Namespace" && name(o) == ns)
        .map(|n| selector::labels_of(n.at("/metadata/labels")))
        .unwrap_or_default();
    l.insert("kubernetes.io/metadata.name".into(), ns.to_string());
    l
}

fn selects(sel: Option<&Value>, labels: &Labels) -> bool {
    sel.is_none_or(|s| selector::label_selector_matches(s, labels))
}

/// What injects a pod with `pod` labels (and `annotations`) in a namespace with `ns` labels.
fn resolve(hooks: &[Hook<'_>], ns: &Labels, pod: &Labels, annotations: &Labels) -> Injected {
    if annotations.get(INJECT).map(String::as_str) == Some("false") {
        return Injected::Not {
            why: format!("pod annotation {INJECT}: \"false\""),
        };
    }
    let matching: Vec<&Hook<'_>> = hooks
        .iter()
        .filter(|h| selects(h.namespace_selector, ns) && selects(h.object_selector, pod))
        .collect();
    if let Some(first) = matching.first() {
        let revisions: BTreeSet<&str> = matching
            .iter()
            .filter_map(|h| h.target.revision.as_deref())
            .collect();
        if let Some(u) = matching.iter().find(|h| h.target.revision.is_none()) {
            return Injected::Unresolved {
                via: format!("{} webhook {}, {}", u.config, u.target.webhook, u.target.by),
            };
        }
        if revisions.len() > 1 {
            return Injected::Several {
                revisions: revisions.into_iter().map(str::to_string).collect(),
            };
        }
        let via = match &first.tag {
            Some(t) => format!("tag {t}"),
            None => format!("webhook {}", first.config),
        };
        return Injected::Revision {
            revision: first.target.revision.clone().unwrap_or_default(),
            via,
        };
    }
    // No webhook of the stream matches: the labels name a revision whose own injector is
    // installed with istiod, outside the stream.
    let opted_out = pod.get(INJECT).map(String::as_str) == Some("false");
    let outside = |revision: &str, via: String| {
        if opted_out {
            Injected::Not {
                why: format!("pod label {INJECT}: \"false\""),
            }
        } else {
            Injected::Revision {
                revision: revision.to_string(),
                via,
            }
        }
    };
    match (ns.get(INJECTION).map(String::as_str), ns.get(REV)) {
        (Some("enabled"), _) => outside(
            DEFAULT_REVISION,
            format!("namespace label {INJECTION}=enabled; no webhook in the stream serves it"),
        ),
        (Some(other), _) => Injected::Not {
            why: format!("namespace label {INJECTION}={other}"),
        },
        (None, Some(r)) => outside(
            r,
            format!("namespace label {REV}={r}; no tag webhook {r} in the stream"),
        ),
        (None, None) => match (pod.get(REV), pod.get(INJECT).map(String::as_str)) {
            (Some(r), _) => outside(
                r,
                format!("pod label {REV}={r}; no tag webhook {r} in the stream"),
            ),
            (None, Some("true")) => outside(
                DEFAULT_REVISION,
                format!("pod label {INJECT}=true; no webhook in the stream serves it"),
            ),
            _ => Injected::Not {
                why: "no injection label on the namespace or the pod".into(),
            },
        },
    }
}

impl Injection {
    /// The injection model of `objects` (a final stream, or a base).
    pub fn of(objects: &[Value]) -> Injection {
        let hooks = hooks(objects);
        let canonical = canonical_urls(objects);
        let mut tags: Vec<TagRoute> = objects
            .iter()
            .filter(|o| kind(o) == "MutatingWebhookConfiguration")
            .filter_map(|o| {
                let tag = tag_of(o)?;
                Some(TagRoute {
                    tag,
                    object: name(o).to_string(),
                    label: label(o, REV).map(str::to_string),
                    webhooks: o
                        .get("webhooks")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|h| target_of(h, &canonical))
                        .collect(),
                })
            })
            .collect();
        tags.sort_by(|a, b| a.object.cmp(&b.object));
        let empty = Labels::default();
        let mut namespaces: Vec<NamespaceInjection> = objects
            .iter()
            .filter(|o| kind(o) == "Namespace")
            .map(|n| NamespaceInjection {
                name: name(n).to_string(),
                injected: resolve(&hooks, &namespace_labels(objects, name(n)), &empty, &empty),
            })
            .collect();
        namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        let mut workloads = Vec::new();
        for o in objects {
            let Some((k, path)) = WORKLOADS.iter().find(|(k, _)| *k == kind(o)) else {
                continue;
            };
            let Some(template) = o.at(path) else {
                continue;
            };
            let ns = o
                .at("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default");
            workloads.push(WorkloadInjection {
                kind: k.to_string(),
                namespace: ns.to_string(),
                name: name(o).to_string(),
                injected: resolve(
                    &hooks,
                    &namespace_labels(objects, ns),
                    &selector::labels_of(template.at("/metadata/labels")),
                    &selector::labels_of(template.at("/metadata/annotations")),
                ),
            });
        }
        workloads.sort_by_key(WorkloadInjection::id);
        Injection {
            tags,
            namespaces,
            workloads,
        }
    }

    pub fn workload(&self, kind: &str, namespace: &str, name: &str) -> Option<&WorkloadInjection> {
        self.workloads
            .iter()
            .find(|w| w.kind == kind && w.namespace == namespace && w.name == name)
    }

    pub fn tag(&self, tag: &str) -> Option<&TagRoute> {
        self.tags.iter().find(|t| t.tag == tag)
    }

    /// Everything in the stream that resolves (or may resolve) to `revision`, in words: tags
    /// with a webhook or label on it, namespaces, workloads. Empty: nothing in the stream
    /// needs that revision's injector.
    pub fn on_revision(&self, revision: &str) -> Vec<String> {
        let mut out = Vec::new();
        for t in self.tags.iter().filter(|t| t.touches(revision)) {
            let targets: BTreeSet<String> = t
                .webhooks
                .iter()
                .map(|w| format!("{} by {}", w.revision.as_deref().unwrap_or("unknown"), w.by))
                .collect();
            out.push(format!(
                "tag {} ({}: label {REV}: {}, {} webhook(s) → {})",
                t.tag,
                t.object,
                t.label.as_deref().unwrap_or("none"),
                t.webhooks.len(),
                targets.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        for n in self
            .namespaces
            .iter()
            .filter(|n| n.injected.involves(revision))
        {
            out.push(format!("namespace {}: {}", n.name, n.injected.text()));
        }
        for w in self
            .workloads
            .iter()
            .filter(|w| w.injected.involves(revision))
        {
            out.push(format!("{}: {}", w.id(), w.injected.text()));
        }
        out
    }
}

/// The workloads whose pod template differs between two streams (each change re-creates their
/// pods), as `Kind namespace/name`: what the stage invariants read to prove that a commit
/// restarts nothing it does not declare.
pub fn pod_templates_changed(before: &[Value], after: &[Value]) -> Vec<String> {
    let template = |objects: &[Value], k: &str, ns: &str, n: &str| -> Option<Value> {
        let path = WORKLOADS.iter().find(|(w, _)| *w == k)?.1;
        objects
            .iter()
            .find(|o| {
                kind(o) == k
                    && name(o) == n
                    && o.at("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("default")
                        == ns
            })
            .and_then(|o| o.at(path))
            .cloned()
    };
    let mut out = BTreeSet::new();
    for side in [before, after] {
        for o in side
            .iter()
            .filter(|o| WORKLOADS.iter().any(|(k, _)| *k == kind(o)))
        {
            let ns = o
                .at("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default");
            if template(before, kind(o), ns, name(o)) != template(after, kind(o), ns, name(o)) {
                out.insert(format!("{} {ns}/{}", kind(o), name(o)));
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn tag(tag: &str, service: Option<&str>, url: Option<&str>, default: bool) -> Value {
        let client = match (service, url) {
            (Some(s), _) => {
                json!({"service": {"name": s, "namespace": "istio-system", "path": "/inject", "port": 443}})
            }
            (None, Some(u)) => json!({"url": u}),
            _ => json!({}),
        };
        let mut hooks = vec![
            json!({"name": "rev.namespace.sidecar-injector.istio.io", "clientConfig": client,
                "namespaceSelector": {"matchExpressions": [
                    {"key": "istio.io/rev", "operator": "In", "values": [tag]},
                    {"key": "istio-injection", "operator": "DoesNotExist"}]},
                "objectSelector": {"matchExpressions": [
                    {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]}}),
            json!({"name": "rev.object.sidecar-injector.istio.io", "clientConfig": client,
                "namespaceSelector": {"matchExpressions": [
                    {"key": "istio.io/rev", "operator": "DoesNotExist"},
                    {"key": "istio-injection", "operator": "DoesNotExist"}]},
                "objectSelector": {"matchExpressions": [
                    {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]},
                    {"key": "istio.io/rev", "operator": "In", "values": [tag]}]}}),
        ];
        if default {
            hooks.push(json!({"name": "namespace.sidecar-injector.istio.io", "clientConfig": client,
                "namespaceSelector": {"matchExpressions": [
                    {"key": "istio-injection", "operator": "In", "values": ["enabled"]}]},
                "objectSelector": {"matchExpressions": [
                    {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]}}));
            hooks.push(
                json!({"name": "object.sidecar-injector.istio.io", "clientConfig": client,
                "namespaceSelector": {"matchExpressions": [
                    {"key": "istio-injection", "operator": "DoesNotExist"},
                    {"key": "istio.io/rev", "operator": "DoesNotExist"}]},
                "objectSelector": {"matchExpressions": [
                    {"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]},
                    {"key": "istio.io/rev", "operator": "DoesNotExist"}]}}),
            );
        }
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": format!("istio-revision-tag-{tag}"),
                "labels": {"istio.io/tag": tag, "istio.io/rev": service.map(|s| s.trim_start_matches("istiod-")).unwrap_or("1-22-1")}},
            "webhooks": hooks})
    }

    fn ns(name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    }

    fn deploy(ns: &str, name: &str, labels: Value, annotations: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"metadata": {"labels": labels, "annotations": annotations}}}})
    }

    fn rev_of(i: &Injection, ns: &str, name: &str) -> Option<String> {
        i.workload("Deployment", ns, name)
            .and_then(|w| w.injected.revision())
            .map(str::to_string)
    }

    #[test]
    fn namespace_labels_resolve_through_tag_webhooks() {
        let objects = vec![
            tag("prod-stable", Some("istiod-1-22-1"), None, false),
            tag("prod-canary", Some("istiod-1-23-1"), None, false),
            ns("a", json!({"istio.io/rev": "prod-stable"})),
            ns("b", json!({"istio.io/rev": "prod-canary"})),
            ns("c", json!({"istio.io/rev": "1-23-1"})),
            deploy("a", "web", json!({"app": "web"}), json!({})),
            deploy("b", "web", json!({"app": "web"}), json!({})),
            deploy("c", "web", json!({"app": "web"}), json!({})),
            deploy(
                "a",
                "off",
                json!({"sidecar.istio.io/inject": "false"}),
                json!({}),
            ),
        ];
        let i = Injection::of(&objects);
        assert_eq!(rev_of(&i, "a", "web").as_deref(), Some("1-22-1"));
        assert_eq!(rev_of(&i, "b", "web").as_deref(), Some("1-23-1"));
        // No tag 1-23-1 in the stream: the revision's own injector, outside it.
        assert_eq!(rev_of(&i, "c", "web").as_deref(), Some("1-23-1"));
        assert!(matches!(
            i.workload("Deployment", "a", "off").unwrap().injected,
            Injected::Not { .. }
        ));
        assert_eq!(i.tag("prod-stable").unwrap().revision(), Some("1-22-1"));
        let old = i.on_revision("1-22-1");
        assert!(
            old.iter().any(|l| l.starts_with("tag prod-stable")),
            "{old:?}"
        );
        assert!(
            old.iter().any(|l| l.starts_with("Deployment a/web")),
            "{old:?}"
        );
        assert!(!old.iter().any(|l| l.contains("a/off")), "{old:?}");
    }

    #[test]
    fn the_default_tag_serves_injection_enabled_and_inject_true_pods() {
        let objects = vec![
            tag("default", Some("istiod-1-22-1"), None, true),
            ns("legacy", json!({"istio-injection": "enabled"})),
            ns("plain", json!({})),
            ns("off", json!({"istio-injection": "disabled"})),
            deploy("legacy", "web", json!({}), json!({})),
            deploy(
                "plain",
                "opt-in",
                json!({"sidecar.istio.io/inject": "true"}),
                json!({}),
            ),
            deploy("plain", "bare", json!({}), json!({})),
            deploy(
                "plain",
                "pinned",
                json!({"istio.io/rev": "1-23-1"}),
                json!({}),
            ),
            deploy(
                "off",
                "web",
                json!({"sidecar.istio.io/inject": "true"}),
                json!({}),
            ),
            deploy(
                "legacy",
                "annotated",
                json!({}),
                json!({"sidecar.istio.io/inject": "false"}),
            ),
        ];
        let i = Injection::of(&objects);
        assert_eq!(rev_of(&i, "legacy", "web").as_deref(), Some("1-22-1"));
        assert_eq!(rev_of(&i, "plain", "opt-in").as_deref(), Some("1-22-1"));
        assert_eq!(rev_of(&i, "plain", "bare"), None);
        assert_eq!(rev_of(&i, "plain", "pinned").as_deref(), Some("1-23-1"));
        assert_eq!(rev_of(&i, "off", "web"), None);
        assert_eq!(rev_of(&i, "legacy", "annotated"), None);
        let tag = i.tag("default").unwrap();
        assert_eq!(tag.webhooks.len(), 4);
        assert_eq!(tag.revision(), Some("1-22-1"));
    }

    #[test]
    fn a_url_webhook_resolves_by_its_istiod_host_or_the_revision_webhook_with_that_url() {
        let mut half = tag(
            "remote",
            None,
            Some("https://istiod-1-22-1.istio-system.svc:15017/inject/cluster/c1/net/n1"),
            false,
        );
        half["metadata"]["labels"]["istio.io/rev"] = json!("1-23-1");
        let i = Injection::of(std::slice::from_ref(&half));
        let t = i.tag("remote").unwrap();
        // Half-moved: the label says 1-23-1, the webhooks still reach istiod-1-22-1.
        assert_eq!(t.revisions(), vec!["1-22-1"]);
        assert_eq!(t.revision(), None);
        assert!(t.touches("1-22-1") && t.touches("1-23-1"));
        // An external istiod's URL names no revision; the revision's own webhook with that URL does.
        let url = "https://203.0.113.7:15017/inject/cluster/c1/net/n1";
        let ext = tag("ext", None, Some(url), false);
        let i = Injection::of(std::slice::from_ref(&ext));
        assert_eq!(i.tag("ext").unwrap().revisions(), Vec::<&str>::new());
        let canonical = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "istio-sidecar-injector-1-22-1", "labels": {"istio.io/rev": "1-22-1"}},
            "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io", "clientConfig": {"url": url},
                "namespaceSelector": {"matchLabels": {"istio.io/rev": "1-22-1"}}}]});
        let i = Injection::of(&[
            ext,
            canonical,
            ns("a", json!({"istio.io/rev": "ext"})),
            deploy("a", "w", json!({}), json!({})),
        ]);
        assert_eq!(i.tag("ext").unwrap().revision(), Some("1-22-1"));
        assert_eq!(rev_of(&i, "a", "w").as_deref(), Some("1-22-1"));
    }

    #[test]
    fn two_revisions_matching_one_pod_are_reported() {
        let objects = vec![
            tag("default", Some("istiod-1-22-1"), None, true),
            tag("other", Some("istiod-1-23-1"), None, true),
            ns("legacy", json!({"istio-injection": "enabled"})),
            deploy("legacy", "web", json!({}), json!({})),
        ];
        let i = Injection::of(&objects);
        assert_eq!(
            i.workload("Deployment", "legacy", "web").unwrap().injected,
            Injected::Several {
                revisions: vec!["1-22-1".into(), "1-23-1".into()]
            }
        );
    }

    #[test]
    fn pod_template_changes_are_listed() {
        let a = vec![deploy("a", "web", json!({"app": "web"}), json!({}))];
        let b = vec![deploy("a", "web", json!({"app": "web"}), json!({"x": "1"}))];
        assert_eq!(pod_templates_changed(&a, &a), Vec::<String>::new());
        assert_eq!(pod_templates_changed(&a, &b), vec!["Deployment a/web"]);
        assert_eq!(pod_templates_changed(&a, &[]), vec!["Deployment a/web"]);
    }
}
