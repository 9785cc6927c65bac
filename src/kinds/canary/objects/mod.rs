//! Stage model → objects: for one environment, the new resources and the patches its stage
//! needs. Each routing or workload feature is a `Component` in its own module; adding one
//! (header routes, Gateway API, an export) means adding a module to `COMPONENTS`, nothing else.

mod authorization;
pub(crate) mod gateway_api;
mod istio;
mod workload;

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use crate::base::{Base, BaseObject};
use crate::error::{Diagnostics, Result};
use crate::kinds::canary::check::{CheckedPlan, EnvironmentPlan};
use crate::kinds::canary::plan::{Labels, Method, Traffic};
use crate::kinds::canary::stage::StageModel;
pub use crate::rendered::{
    Patch, PatchBody, Rendered, Resource, SYNC_WAVE, Target, http_route_backend_refs, is_host_of,
    routes_to, strip_server_fields,
};
use crate::selector;
use crate::templates::{Identity, Templates};

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
            && model.stable_removed | (model.stage == crate::kinds::canary::stage::Stage::Done)
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
            selector::labels_of(workload.value.at("/spec/template/metadata/labels"));
        let base_selector = workload
            .value
            .at("/spec/selector")
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
            use crate::kinds::canary::stage::Stage;
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
        use crate::kinds::canary::stage::Stage;
        self.base_routes_name_subsets
            && self.plan.method != Method::Versioned
            && matches!(self.model.stage, Stage::Cleanup1 | Stage::Cleanup2)
    }

    /// Whether the stage renders test routes (`match:`): while the canary is routed to by
    /// weight, and at cleanup-1 (harmless there: everything reaches the canary).
    pub fn tests_canary(&self) -> bool {
        use crate::kinds::canary::stage::{Routing, Stage};
        !self.env.matches.is_empty()
            && !self.aborted()
            && matches!(
                (self.model.routing, self.model.stage),
                (Some(Routing::Split(_)), _) | (Some(Routing::CanaryOnly), Stage::Cleanup1)
            )
    }

    /// `aborted: true` (what `abort` writes): no request reaches the canary, neither a test
    /// route's nor a mirror's.
    pub fn aborted(&self) -> bool {
        self.env.aborted.is_some()
    }

    /// The mirrored percent at this stage: only while the stable version still serves some
    /// requests (at weight 100, or the succession method's `route` stage, the canary already
    /// takes them all).
    pub fn mirror_percent(&self) -> Option<f64> {
        use crate::kinds::canary::stage::{Routing, Stage};
        let m = self.env.mirror.as_ref()?;
        let serving = matches!(self.model.stage, Stage::Route | Stage::Shift)
            && !self.aborted()
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
            .at("/spec/ports")
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

fn find<'a>(
    plan: &CheckedPlan,
    base: &'a Base,
    kind: &str,
    name: &crate::yaml::At<String>,
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
