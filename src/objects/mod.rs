//! Stage model → objects: for one environment, the new resources and the patches its stage
//! needs. Each routing or workload feature is a `Component` in its own module; adding one
//! (header routes, Gateway API, an export) means adding a module to `COMPONENTS`, nothing else.

mod authorization;
pub(crate) mod gateway_api;
mod istio;
mod workload;

pub use istio::routes_to;

use serde_json::{Value, json};

use crate::base::{Base, BaseObject};
use crate::check::{CheckedPlan, EnvironmentPlan};
use crate::error::{Diagnostics, Result};
use crate::plan::{Labels, Method, Traffic};
use crate::selector;
use crate::stage::StageModel;
use crate::templates::{Identity, Templates};

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
        let s = |p: &str| v.pointer(p).and_then(Value::as_str);
        s("/kind") == Some(&self.kind)
            && s("/metadata/name") == Some(&self.name)
            && s("/metadata/namespace") == self.namespace.as_deref()
    }

    /// `metadata` naming the target, for merge patches.
    fn metadata(&self) -> Value {
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

/// What every component may read: the plan, the environment, its base and facts derived
/// once from them (the two versions' pod labels, the new Deployment's selector, the host).
pub struct Context<'a> {
    pub plan: &'a CheckedPlan,
    pub env: &'a EnvironmentPlan,
    pub model: StageModel,
    pub base: &'a Base,
    pub templates: &'a Templates,
    pub service: &'a BaseObject,
    /// The plan's `workload`: the original Deployment (succession, coexistence: it becomes
    /// the canary) or the stable Deployment (versioned).
    pub workload: &'a BaseObject,
    /// Namespace of new objects: the workload's, when base sets one.
    pub namespace: Option<String>,
    /// The Service's host as routes and subsets name it.
    pub host: String,
    /// Pod labels of the workload in base.
    pub original_pod_labels: Labels,
    /// Pod labels of the canary's pods once rendered.
    pub canary_pod_labels: Labels,
    /// Pod labels of the stable version's pods once rendered.
    pub stable_pod_labels: Labels,
    /// The Deployment canaryplan adds (`CheckedPlan::new_deployment_name`): its pod labels
    /// and `spec.selector`.
    pub new_pod_labels: Labels,
    pub new_selector: Value,
    /// Base routes to the Service name the stable subset (Argo Rollouts style): after weight
    /// 100 that subset must follow the canary's pods until the route patch is gone.
    pub base_routes_name_subsets: bool,
    /// Versioned: the base already holds the release's end state (the canary Deployment, and
    /// no stable one); `workload` is then the canary Deployment of base.
    pub base_edited: bool,
}

impl<'a> Context<'a> {
    pub fn new(
        plan: &'a CheckedPlan,
        env: &'a EnvironmentPlan,
        base: &'a Base,
        templates: &'a Templates,
    ) -> Result<Context<'a>> {
        Self::at(plan, env, env.model.clone(), base, templates)
    }

    /// The context of `env` rendered at the stage `model` describes.
    pub fn at(
        plan: &'a CheckedPlan,
        env: &'a EnvironmentPlan,
        model: StageModel,
        base: &'a Base,
        templates: &'a Templates,
    ) -> Result<Context<'a>> {
        let mut d = Diagnostics::default();
        let service = find(plan, base, "Service", &plan.service, &mut d);
        // Versioned, after the base edit that ends a release: the stable Deployment is gone
        // from base and the canary is the base's own (stages after the stable one was removed).
        let edited = plan.method == Method::Versioned
            && model.stable_removed | (model.stage == crate::stage::Stage::Done)
            && base.find("Deployment", &plan.workload.value).is_none();
        let canary_in_base = base.find("Deployment", &plan.new_deployment_name());
        let workload = match canary_in_base {
            Some(c) if edited => Some(c),
            _ => find(plan, base, "Deployment", &plan.workload, &mut d),
        };
        d.into_result()?;
        let (Some(service), Some(workload)) = (service, workload) else {
            return Err(plan.diag(plan.workload.pos, "base objects missing").into());
        };
        let namespace = workload.namespace().map(str::to_string);
        let host = match service.namespace() {
            Some(ns) => format!("{}.{ns}.svc.cluster.local", service.name),
            None => service.name.clone(),
        };
        let vl = &plan.version_label;
        let original_pod_labels =
            selector::labels_of(workload.value.pointer("/spec/template/metadata/labels"));
        let base_selector = workload
            .value
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut match_labels = selector::labels_of(base_selector.get("matchLabels"));
        let (canary_pod_labels, stable_pod_labels, new_pod_labels) = match plan.method {
            Method::Versioned => {
                let mut canary = original_pod_labels.clone();
                canary.insert(vl.clone(), plan.canary.version.value.clone());
                match_labels.insert(vl.clone(), plan.canary.version.value.clone());
                (canary.clone(), original_pod_labels.clone(), canary)
            }
            Method::Succession | Method::Coexistence => {
                let mut canary = original_pod_labels.clone();
                canary.insert(vl.clone(), plan.canary.version.value.clone());
                canary.extend(plan.pod_labels.clone());
                let mut stable = original_pod_labels.clone();
                stable.extend(plan.stable.labels.clone());
                stable.insert(vl.clone(), plan.stable.version.value.clone());
                stable.extend(plan.pod_labels.clone());
                // The copy is a new Deployment, so its selector is ours to choose: the
                // original's, with the plan's overrides and the version label, which keeps it
                // off the original's pods.
                match_labels.extend(plan.stable.labels.clone());
                match_labels.insert(vl.clone(), plan.stable.version.value.clone());
                (canary, stable.clone(), stable)
            }
        };
        let mut new_selector = base_selector;
        if let Some(obj) = new_selector.as_object_mut() {
            obj.insert("matchLabels".into(), selector::to_value(&match_labels));
        }
        let mut cx = Context {
            plan,
            env,
            model,
            base,
            templates,
            service,
            workload,
            namespace,
            host,
            original_pod_labels,
            canary_pod_labels,
            stable_pod_labels,
            new_pod_labels,
            new_selector,
            base_routes_name_subsets: false,
            base_edited: edited && canary_in_base.is_some(),
        };
        cx.base_routes_name_subsets =
            cx.plan.traffic == Traffic::Istio && istio::base_routes_name_subsets(&cx);
        if cx.base_routes_name_subsets && plan.method != Method::Versioned {
            use crate::stage::Stage;
            // The route patch goes at cleanup-2; until then (and from weight 100 on) the stable
            // subset names the canary's pods, which keep their version label that long.
            let stage = cx.model.stage;
            cx.model.canary_pod_labels |= stage == Stage::Cleanup2;
        }
        Ok(cx)
    }

    /// After weight 100, until the route patch goes: the stable subset names the canary's
    /// pods, because base routes name that subset (see `base_routes_name_subsets`).
    pub fn stable_subset_follows_canary(&self) -> bool {
        use crate::stage::Stage;
        self.base_routes_name_subsets
            && self.plan.method != Method::Versioned
            && matches!(self.model.stage, Stage::Cleanup1 | Stage::Cleanup2)
    }

    /// Whether the stage renders test routes (`match:`): while the canary is routed to by
    /// weight, and at cleanup-1 (harmless there: everything reaches the canary).
    pub fn tests_canary(&self) -> bool {
        use crate::stage::{Routing, Stage};
        !self.env.matches.is_empty()
            && matches!(
                (self.model.routing, self.model.stage),
                (Some(Routing::Split(_)), _) | (Some(Routing::CanaryOnly), Stage::Cleanup1)
            )
    }

    /// The mirrored percent at this stage: only while the stable version still serves some
    /// requests (at weight 100, or the succession method's `route` stage, the canary already
    /// takes them all).
    pub fn mirror_percent(&self) -> Option<f64> {
        use crate::stage::{Routing, Stage};
        let m = self.env.mirror.as_ref()?;
        let serving = matches!(self.model.stage, Stage::Route | Stage::Shift)
            && matches!(self.model.routing, Some(Routing::Split(w)) if w.stable > 0);
        serving.then_some(m.value)
    }

    /// Whether a route destination host names the Service (short, namespaced or full name).
    pub fn is_service_host(&self, host: &str) -> bool {
        is_host_of(self.service, host)
    }

    /// The Service's `spec.ports`.
    pub fn service_ports(&self) -> &'a [Value] {
        self.service
            .value
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// `metadata.namespace` for a new object, when there is one.
    pub fn namespace_value(&self) -> Value {
        self.namespace
            .as_ref()
            .map(|n| Value::String(n.clone()))
            .unwrap_or(Value::Null)
    }

    /// A new object rendered from `template`, as the overlay file `<kind>-<name>.yaml`.
    /// `extra` adds template values; `opaque` ones are placed, not inspected (see `Templates`).
    pub fn new_resource(
        &self,
        template: &str,
        (api_version, kind): (&str, &str),
        name: &str,
        extra: Value,
        opaque: Vec<(&str, Value)>,
        from: String,
    ) -> Result<Resource> {
        let context = self.template_context(name, extra);
        let object = self.templates.render_with(
            template,
            &context,
            opaque,
            &Identity {
                api_version,
                kind,
                name,
            },
        )?;
        Ok(Resource {
            file: format!("{}-{name}.yaml", kind.to_ascii_lowercase()),
            from,
            object,
        })
    }

    /// Template values every template sees, plus `extra`.
    fn template_context(&self, name: &str, extra: Value) -> Value {
        let mut c = json!({
            "name": name,
            "namespace": self.namespace_value(),
            "plan": self.plan.name,
            "environment": self.env.name.value,
            "stage": self.model.stage.name(),
        });
        if let (Some(o), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        c
    }

    /// A base object name checked to be safe as part of a file name.
    pub fn file_part(&self, o: &BaseObject) -> Result<String> {
        if crate::names::is_dns_subdomain(&o.name) {
            Ok(o.name.clone())
        } else {
            Err(o
                .error(
                    &["metadata", "name"],
                    format!("`{}` is not a valid Kubernetes object name", o.name),
                )
                .hint("object names are lower-case letters, digits, `-` and `.`")
                .into())
        }
    }
}

/// Every backendRef of every rule of an HTTPRoute.
pub fn http_route_backend_refs(hr: &Value) -> impl Iterator<Item = &Value> {
    hr.pointer("/spec/rules")
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

fn find<'a>(
    plan: &CheckedPlan,
    base: &'a Base,
    kind: &str,
    name: &crate::check::At<String>,
    d: &mut Diagnostics,
) -> Option<&'a BaseObject> {
    let found = base.find(kind, &name.value);
    if found.is_none()
        && kind == "Deployment"
        && let Some(rollout) = base.find("Rollout", &name.value)
    {
        d.push(
            rollout
                .error(&["kind"], format!("`{}` is an Argo Rollouts Rollout, not a Deployment", name.value))
                .hint(format!("canaryplan stages a canary on plain Deployments, with no controller in the cluster: `canaryplan init --from-rollout {}` writes a plan from the Rollout and prints the Deployment to put in its place (README: \"Coming from Argo Rollouts\")", crate::output::diff::shown(&rollout.source.path))),
        );
        return None;
    }
    if found.is_none() {
        let others: Vec<&str> = base.of_kind(kind).map(|o| o.name.as_str()).collect();
        let hint = match crate::names::did_you_mean(&name.value, others.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if others.is_empty() => format!(
                "the base has no {kind}; add its manifest to {}",
                base.path.display()
            ),
            None => format!("the base has {kind} {}", others.join(", ")),
        };
        d.push(
            plan.diag(
                name.pos,
                format!(
                    "{kind} `{}` is not in the base {}",
                    name.value,
                    base.path.display()
                ),
            )
            .hint(hint),
        );
    }
    found
}

/// One step of rendering: adds resources and patches for its part of the stage.
pub trait Component {
    fn render(&self, cx: &Context<'_>, out: &mut Rendered) -> Result<()>;
}

/// The components of a plan routed by `traffic`, in the order their files are listed in the
/// overlay: the workload, the traffic backend's (destinations per version, then the routes
/// weighted between them), the authorization policies.
pub fn components(traffic: Traffic) -> impl Iterator<Item = &'static dyn Component> {
    let backend = match traffic {
        Traffic::Istio => istio::COMPONENTS,
        Traffic::GatewayApi => gateway_api::COMPONENTS,
    };
    let first: &[&dyn Component] = &[&workload::Workload];
    let last: &[&dyn Component] = &[&authorization::Policies];
    first.iter().chain(backend).chain(last).copied()
}

/// Renders one environment.
pub fn render(cx: &Context<'_>) -> Result<Rendered> {
    let mut out = Rendered::default();
    let mut d = Diagnostics::default();
    for c in components(cx.plan.traffic) {
        d.take(c.render(cx, &mut out));
    }
    d.into_result()?;
    Ok(out)
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
