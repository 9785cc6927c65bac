//! `kind: GatewayUpgrade`: the gateway canary procedure as stages. `canary` adds a Deployment
//! `<gateway>-canary` with the new version and the pod labels the gateway Service selects (the
//! Service spreads connections over old and new pods: a pod share, not a weight); `upgrade`
//! gives the gateway itself the new version; `cleanup` removes the canary; `done` needs the new
//! version in base. Going back a stage is the rollback.

pub mod init;
pub mod kind;
pub mod plan;

use crate::pointer::Pointer as _;
pub use kind::REGISTRATION;

use serde_json::{Value, json};

use crate::base::{Base, BaseObject};
use crate::error::{Diagnostics, Result};
use crate::render::{EnvironmentRender, Mode};
use crate::rendered::{Patch, PatchBody, Rendered, Resource, Target, strip_server_fields};
use crate::selector;

use crate::mesh_upgrade::plan::Env;
pub use plan::CheckedGatewayUpgrade;
use plan::STAGES;

/// The label that tells the canary's pods from the gateway's (added to its selector).
pub const CANARY_LABEL: &str = "canaryplan.io/gateway-canary";

/// The gateway's objects in base.
pub struct Found<'a> {
    pub gateway: &'a BaseObject,
    pub service: &'a BaseObject,
    /// The HPA scaling the gateway, if any.
    pub hpa: Option<&'a BaseObject>,
}

fn pods(o: &Value) -> crate::plan_file::Labels {
    selector::labels_of(o.at("/spec/template/metadata/labels"))
}

pub fn find<'a>(plan: &CheckedGatewayUpgrade, base: &'a Base) -> Result<Found<'a>> {
    if let Some(ds) = base.find("DaemonSet", &plan.gateway.value) {
        return Err(ds
            .error(&["kind"], format!("gateway {} is a DaemonSet: a GatewayUpgrade canaries a Deployment (one extra pod behind the Service), and a DaemonSet runs one pod per node, so it has no one-pod canary", ds.name))
            .hint("upgrade a DaemonSet gateway in place (its rolling update, after the new revision is installed), or render it as a Deployment (the gateway chart's `kind: Deployment`) to canary it")
            .into());
    }
    let Some(gateway) = base.find("Deployment", &plan.gateway.value) else {
        let others: Vec<&str> = base
            .of_kind("Deployment")
            .map(|o| o.name.as_str())
            .collect();
        return Err(plan
            .diag(
                plan.gateway.pos,
                format!(
                    "Deployment `{}` is not in the base {}",
                    plan.gateway.value,
                    base.path.display()
                ),
            )
            .hint(if others.is_empty() {
                "the base has no Deployment: add the gateway chart's rendered Deployment to it"
                    .to_string()
            } else {
                match crate::names::did_you_mean(&plan.gateway.value, others.iter().copied()) {
                    Some(s) => format!(
                        "did you mean `{s}`? the base has Deployment {}",
                        others.join(", ")
                    ),
                    None => format!("the base has Deployment {}", others.join(", ")),
                }
            })
            .into());
    };
    if let Some(taken) = base.find("Deployment", &plan.canary_name()) {
        return Err(taken
            .error(&["metadata", "name"], format!("the base already has a Deployment `{}`, the canary this upgrade adds", taken.name))
            .hint("the procedure starts from one gateway Deployment: remove or rename the old canary in base (a leftover of an earlier upgrade?)")
            .into());
    }
    let labels = pods(&gateway.value);
    let service = match &plan.service {
        Some(s) => base.find("Service", &s.value).ok_or_else(|| {
            plan.diag(s.pos, format!("Service `{}` is not in the base", s.value))
                .hint("name the gateway's Service, or remove `service` to find it by selector")
        })?,
        None => base
            .of_kind("Service")
            .find(|s| {
                let sel = selector::labels_of(s.value.at("/spec/selector"));
                !sel.is_empty() && selector::map_matches(&sel, &labels)
            })
            .ok_or_else(|| {
                plan.diag(
                    plan.gateway.pos,
                    format!(
                        "no Service in the base selects the pods of Deployment {}",
                        plan.gateway.value
                    ),
                )
                .hint("add the gateway's Service to the base, or name it with `service:`")
            })?,
    };
    let hpa = base.of_kind("HorizontalPodAutoscaler").find(|h| {
        h.value
            .at("/spec/scaleTargetRef/name")
            .and_then(Value::as_str)
            == Some(gateway.name.as_str())
    });
    for h in base.of_kind("HorizontalPodAutoscaler") {
        if h.value
            .at("/spec/scaleTargetRef/name")
            .and_then(Value::as_str)
            == Some(plan.canary_name().as_str())
        {
            return Err(h
                .error(&["spec", "scaleTargetRef"], format!("HorizontalPodAutoscaler {} scales {}, the canary: it would grow the blast radius", h.name, plan.canary_name()))
                .hint("the canary keeps its fixed replicas; point the HPA at the gateway Deployment")
                .into());
        }
    }
    Ok(Found {
        gateway,
        service,
        hpa,
    })
}

/// The proxy container: `istio-proxy`, else the first.
fn proxy_index(d: &Value) -> usize {
    d.at("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .position(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
        })
        .unwrap_or(0)
}

/// The PodDisruptionBudgets whose selector also counts the canary's pods.
fn budgets_over<'a>(base: &'a Base, canary_pods: &crate::plan_file::Labels) -> Vec<&'a BaseObject> {
    base.of_kind("PodDisruptionBudget")
        .filter(|p| {
            p.value
                .at("/spec/selector")
                .is_some_and(|s| selector::label_selector_matches(s, canary_pods))
        })
        .collect()
}

const VERSION_LABEL: &str = "app.kubernetes.io/version";
const CHART_LABEL: &str = "helm.sh/chart";

/// The Istio version a revision name like `1-23-1` stands for.
fn version_of_revision(revision: &str) -> Option<String> {
    let parts: Vec<&str> = revision.split('-').collect();
    (parts.len() >= 2
        && parts.len() <= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
    .then(|| parts.join("."))
}

/// The version in a proxy image's tag (`docker.io/istio/proxyv2:1.23.1-distroless` → 1.23.1).
fn version_of_image(image: &str) -> Option<String> {
    let name = image.split('@').next().unwrap_or(image);
    let tag = name
        .rsplit_once(':')
        .map(|(_, t)| t)
        .filter(|t| !t.contains('/'))?;
    let v = tag.split('-').next().unwrap_or(tag);
    (v.split('.').count() >= 2
        && v.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
    .then(|| v.to_string())
}

/// The new version, from the image's tag or the revision's name.
fn new_version(plan: &CheckedGatewayUpgrade) -> Option<String> {
    plan.image
        .as_ref()
        .and_then(|i| version_of_image(&i.value))
        .or_else(|| {
            plan.revision
                .as_ref()
                .and_then(|r| version_of_revision(&r.value))
        })
}

/// The chart's release labels on a copy that is not that release: the version label says the
/// new version (or goes, when it is not known), the chart label goes.
fn relabel_release(labels: &mut crate::plan_file::Labels, version: Option<&str>) {
    labels.shift_remove(CHART_LABEL);
    if labels.contains_key(VERSION_LABEL) {
        match version {
            Some(v) => {
                labels.insert(VERSION_LABEL.into(), v.to_string());
            }
            None => {
                labels.shift_remove(VERSION_LABEL);
            }
        }
    }
}

/// Whether the gateway's proxy is injected (the injector sets its image: `image: auto`, the
/// `gateway` injection template, or `sidecar.istio.io/inject: "true"`).
fn injected(gateway: &Value) -> bool {
    let i = proxy_index(gateway);
    gateway
        .at(&format!("/spec/template/spec/containers/{i}/image"))
        .and_then(Value::as_str)
        == Some("auto")
        || gateway
            .at("/spec/template/metadata/annotations/inject.istio.io~1templates")
            .is_some()
        || pods(gateway)
            .get("sidecar.istio.io/inject")
            .map(String::as_str)
            == Some("true")
}

/// The revisions the base can inject: istiod Services, revision and tag webhooks.
fn served_revisions(base: &Base) -> Vec<String> {
    let values: Vec<Value> = base.objects.iter().map(|o| o.value.clone()).collect();
    let model = crate::mesh_upgrade::injection::Injection::of(&values);
    let mut out: Vec<String> = base
        .of_kind("Service")
        .filter_map(|s| crate::mesh_upgrade::injection::revision_of_service(&s.name))
        .chain(model.tags.iter().map(|t| t.tag.clone()))
        .chain(
            base.of_kind("MutatingWebhookConfiguration")
                .filter_map(|w| {
                    w.value
                        .at("/metadata/labels/istio.io~1rev")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                }),
        )
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Targets that make the canary pointless or wrong: the version the gateway runs already, a
/// proxy image of another version than the revision, a new proxy under the old control plane,
/// a revision no injector serves.
fn check_target(plan: &CheckedGatewayUpgrade, env: &Env, base: &Base, f: &Found<'_>) -> Result<()> {
    let mut d = Diagnostics::default();
    let gw = &f.gateway.value;
    let current_rev = pods(gw).get("istio.io/rev").cloned();
    let i = proxy_index(gw);
    let current_image = gw
        .at(&format!("/spec/template/spec/containers/{i}/image"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let before_upgrade = matches!(env.stage.value.as_str(), "prepare" | "canary" | "upgrade");
    if before_upgrade {
        let same_rev = plan
            .revision
            .as_ref()
            .is_none_or(|r| current_rev.as_deref() == Some(r.value.as_str()));
        let same_image = plan
            .image
            .as_ref()
            .is_none_or(|img| current_image.as_deref() == Some(img.value.as_str()));
        if same_rev && same_image {
            let at = plan
                .revision
                .as_ref()
                .or(plan.image.as_ref())
                .map(|t| t.pos)
                .unwrap_or(plan.to_pos);
            d.push(
                plan.diag(at, format!("Deployment {} already runs {}: the canary would be the version the gateway runs, and the upgrade would change nothing", f.gateway.name, to_text(plan)))
                    .hint(format!("name the new control plane's revision in `to.revision` (the base serves {})", served_revisions(base).join(", "))),
            );
        }
        if let (None, Some(img)) = (&plan.revision, &plan.image)
            && injected(gw)
        {
            d.push(
                plan.diag(img.pos, format!("an image-only upgrade of injected gateway {} runs proxy {} under its old control plane{}: the canary's version must match its control plane's", f.gateway.name, img.value, current_rev.as_ref().map(|r| format!(" (revision {r})")).unwrap_or_default()))
                    .hint("install the new revision beside the old one and set `to.revision` to it; keep `image: auto` (remove `to.image`): the injector then gives the canary the new proxy"),
            );
        }
    }
    if let (Some(r), Some(img)) = (&plan.revision, &plan.image)
        && let (Some(rv), Some(iv)) = (version_of_revision(&r.value), version_of_image(&img.value))
        && rv != iv
    {
        let old = current_rev
            .as_deref()
            .and_then(version_of_revision)
            .is_some_and(|o| o == iv);
        d.push(
            plan.diag(img.pos, format!("image {} is version {iv}{}, revision {} is version {rv}: the canary's proxy must match its control plane's version", img.value, if old { ", the old version" } else { "" }, r.value))
                .hint(format!("remove `to.image` (the injector sets the proxy of revision {}), or use the {rv} proxy image", r.value)),
        );
    }
    if let Some(r) = &plan.revision {
        let served = served_revisions(base);
        if !served.contains(&r.value) {
            let hint = match crate::names::did_you_mean(&r.value, served.iter().map(String::as_str))
            {
                Some(s) => format!("did you mean `{s}`? the base serves {}", served.join(", ")),
                None => format!(
                    "add the revision's istiod Service `istiod-{}` (istio-discovery chart, `revision: {}`) or its tag webhook to the base `{}`{}",
                    r.value,
                    r.value,
                    plan.base.value,
                    if served.is_empty() {
                        String::new()
                    } else {
                        format!("; it serves {}", served.join(", "))
                    }
                ),
            };
            d.push(
                plan.diag(r.pos, format!("no injector in the base serves revision {}: the gateway's pods would come back with `image: auto` and no proxy", r.value))
                    .hint(hint),
            );
        }
    }
    d.into_result()
}

fn canary(plan: &CheckedGatewayUpgrade, f: &Found<'_>, base: &Base) -> Resource {
    let mut d = f.gateway.value.clone();
    strip_server_fields(&mut d);
    let mut labels = pods(&d);
    labels.insert(CANARY_LABEL.into(), "true".into());
    if let Some(r) = &plan.revision {
        labels.insert("istio.io/rev".into(), r.value.clone());
    }
    // The chart's release labels describe the old version: the canary is not that release.
    let version = new_version(plan);
    relabel_release(&mut labels, version.as_deref());
    let mut sel = selector::labels_of(d.at("/spec/selector/matchLabels"));
    sel.insert(CANARY_LABEL.into(), "true".into());
    if let Some(m) = d.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("name".into(), json!(plan.canary_name()));
        if let Some(l) = m.get_mut("labels").and_then(Value::as_object_mut) {
            if let Some(r) = &plan.revision
                && l.contains_key("istio.io/rev")
            {
                l.insert("istio.io/rev".into(), json!(r.value));
            }
            let mut own = selector::labels_of(Some(&Value::Object(l.clone())));
            relabel_release(&mut own, version.as_deref());
            *l = selector::to_value(&own)
                .as_object()
                .cloned()
                .unwrap_or_default();
        }
    }
    if let Some(s) = d.get_mut("spec").and_then(Value::as_object_mut) {
        s.insert("replicas".into(), json!(plan.replicas));
    }
    if let Some(s) = d.at_mut("/spec/selector").and_then(Value::as_object_mut) {
        s.insert("matchLabels".into(), selector::to_value(&sel));
    }
    if let Some(t) = d
        .at_mut("/spec/template/metadata")
        .and_then(Value::as_object_mut)
    {
        t.insert("labels".into(), selector::to_value(&labels));
    }
    let i = proxy_index(&d);
    if let (Some(image), Some(c)) = (
        &plan.image,
        d.at_mut(&format!("/spec/template/spec/containers/{i}"))
            .and_then(Value::as_object_mut),
    ) {
        c.insert("image".into(), json!(image.value));
    }
    let mut from = format!(
        "Deployment {} with the new version, {} pod(s) behind Service {}",
        f.gateway.name, plan.replicas, f.service.name
    );
    let budgets = budgets_over(base, &labels);
    if !budgets.is_empty() {
        from.push_str(&format!(
            "; warning: PodDisruptionBudget {} counts these pods too",
            budgets
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Resource {
        file: format!("deployment-{}.yaml", plan.canary_name()),
        from,
        object: d,
    }
}

/// The patch that gives the gateway itself the new version.
fn upgrade(plan: &CheckedGatewayUpgrade, f: &Found<'_>) -> Patch {
    let mut ops = Vec::new();
    if let Some(r) = &plan.revision {
        ops.push(json!({"op": "add", "path": "/spec/template/metadata/labels/istio.io~1rev", "value": r.value}));
    }
    if let Some(image) = &plan.image {
        let i = proxy_index(&f.gateway.value);
        ops.push(json!({"op": "replace", "path": format!("/spec/template/spec/containers/{i}/image"), "value": image.value}));
    }
    if let Some(v) = new_version(plan)
        && pods(&f.gateway.value).contains_key(VERSION_LABEL)
    {
        ops.push(json!({"op": "replace", "path": "/spec/template/metadata/labels/app.kubernetes.io~1version", "value": v}));
    }
    Patch {
        file: format!("patch-deployment-{}.yaml", f.gateway.name),
        from: format!(
            "Deployment {} upgraded to {}",
            f.gateway.name,
            to_text(plan)
        ),
        target: Target::of(f.gateway),
        body: PatchBody::Json(ops),
    }
}

/// The new version, in words.
pub fn to_text(plan: &CheckedGatewayUpgrade) -> String {
    match (&plan.revision, &plan.image) {
        (Some(r), Some(i)) => format!("revision {} and image {}", r.value, i.value),
        (Some(r), None) => format!("revision {}", r.value),
        (None, Some(i)) => format!("image {}", i.value),
        (None, None) => String::new(),
    }
}

/// Whether the gateway in base already runs the new version (what `done` needs).
fn upgraded_in_base(plan: &CheckedGatewayUpgrade, f: &Found<'_>) -> bool {
    let rev_ok = plan
        .revision
        .as_ref()
        .is_none_or(|r| pods(&f.gateway.value).get("istio.io/rev") == Some(&r.value));
    let i = proxy_index(&f.gateway.value);
    let image_ok = plan.image.as_ref().is_none_or(|img| {
        f.gateway
            .value
            .at(&format!("/spec/template/spec/containers/{i}/image"))
            .and_then(Value::as_str)
            == Some(img.value.as_str())
    });
    rev_ok && image_ok
}

/// The stage's objects, `f` being the gateway's objects in `base`.
pub fn render(
    plan: &CheckedGatewayUpgrade,
    env: &Env,
    base: &Base,
    f: &Found<'_>,
) -> Result<Rendered> {
    let mut out = Rendered::default();
    match env.stage.value.as_str() {
        "canary" => out.resources.push(canary(plan, f, base)),
        "upgrade" => {
            out.resources.push(canary(plan, f, base));
            out.patches.push(upgrade(plan, f));
        }
        "cleanup" => out.patches.push(upgrade(plan, f)),
        "done" if !upgraded_in_base(plan, f) => {
            return Err(plan
                .diag(env.stage.pos, format!("at done the base alone would put Deployment {} back on its old version", f.gateway.name))
                .hint(format!("put {} into Deployment {} in the base `{}` while at cleanup, then advance to done", to_text(plan), f.gateway.name, plan.base.value))
                .into());
        }
        _ => {}
    }
    Ok(out)
}

/// The checks on the final objects.
fn check(plan: &CheckedGatewayUpgrade, env: &Env, f: &Found<'_>, objects: &[Value]) -> Result<()> {
    let mut d = Diagnostics::default();
    let sel = selector::labels_of(f.service.value.at("/spec/selector"));
    for o in objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Deployment"))
    {
        let name = o
            .at("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(s) = o.at("/spec/selector")
            && !selector::label_selector_matches(s, &pods(o))
        {
            d.push(
                plan.diag(
                    env.stage.pos,
                    format!(
                        "the selector of Deployment {name} does not match its pod template's labels"
                    ),
                )
                .hint("the API server rejects it"),
            );
        }
        if name == plan.canary_name() && !selector::map_matches(&sel, &pods(o)) {
            d.push(
                plan.diag(env.stage.pos, format!("Service {} does not select the canary's pods: the canary would get no traffic", f.service.name))
                    .hint("the canary carries the gateway's pod labels; check the Service's selector keys (a revision label in it?)"),
            );
        }
    }
    d.into_result()
}

/// The pod share of the canary: its replicas against the gateway's (the HPA's minReplicas
/// where one scales it).
pub fn pod_share(plan: &CheckedGatewayUpgrade, f: &Found<'_>) -> (u64, u64) {
    let gateway = f
        .hpa
        .and_then(|h| h.value.at("/spec/minReplicas").and_then(Value::as_u64))
        .or_else(|| f.gateway.value.at("/spec/replicas").and_then(Value::as_u64))
        .unwrap_or(1);
    (u64::from(plan.replicas), gateway + u64::from(plan.replicas))
}

pub fn render_plan(
    plan: &CheckedGatewayUpgrade,
    only: &[String],
    mode: Mode,
) -> Result<Vec<EnvironmentRender>> {
    let base = super::load_base(
        &plan.dir,
        &plan.base,
        &plan.root,
        plan.diag(plan.base.pos, String::new()),
    )?;
    super::render_each(
        &plan.path,
        &plan.environments,
        |e| e.name.value.as_str(),
        only,
        |env| render_environment(plan, env, &base, mode),
    )
}

fn render_environment(
    plan: &CheckedGatewayUpgrade,
    env: &Env,
    base: &Base,
    mode: Mode,
) -> Result<EnvironmentRender> {
    let f = find(plan, base)?;
    check_target(plan, env, base, &f)?;
    let rendered = render(plan, env, base, &f)?;
    let objects = crate::output::stream::final_objects(base, &rendered)?;
    check(plan, env, &f, &objects)?;
    let (canary, all) = pod_share(plan, &f);
    let traffic = match env.stage.value.as_str() {
        "canary" => format!("canary pods {canary} of {all} (a pod share)"),
        "upgrade" => {
            format!("every gateway pod on the new version, the canary's {canary} still running")
        }
        "cleanup" | "done" => "every gateway pod on the new version".into(),
        _ => "every gateway pod on the old version".into(),
    };
    super::environment_render(
        super::Written {
            plan_name: &plan.name,
            plan_path: &plan.path,
            plan_dir: &plan.dir,
            root: &plan.root,
            output_dir: plan.output.join(&env.name.value),
            environment: &env.name.value,
            stage: &env.stage.value,
            ladder: &STAGES,
            stage_at: plan.diag(env.stage.pos, String::new()),
            bases: vec![(base, plan.diag(plan.base.pos, String::new()))],
            traffic,
            promise: promise(plan, env, base, (canary, all)),
        },
        &rendered,
        objects,
        mode,
    )
}

/// What a stage promises (`kinds::promise`): the canary's pods take their share of the
/// gateway's connections (a pod share, not a weight); `upgrade` moves the gateway to the new
/// revision; `cleanup` leaves every connection on the upgraded gateway.
fn promise(
    plan: &CheckedGatewayUpgrade,
    env: &Env,
    base: &Base,
    (canary_pods, all_pods): (u64, u64),
) -> crate::kinds::promise::Promise {
    use crate::invariants::{Declared, Revisions, Shift};
    use crate::kinds::promise::{beside, named};
    let objects: Vec<Value> = base.objects.iter().map(|o| o.value.clone()).collect();
    let gateway = named(&objects, "Deployment", &plan.gateway.value);
    let canary = beside(&gateway, &plan.canary_name());
    let revisions = plan.revision.as_ref().map(|rev| Revisions {
        namespaces: Vec::new(),
        workloads: vec![gateway.clone()],
        to: rev.value.clone(),
        pinned: Vec::new(),
    });
    let service = find(plan, base)
        .map(|f| f.service.name.clone())
        .unwrap_or_default();
    let shift = |to: f64, revisions| Shift {
        service: service.clone(),
        ports: Vec::new(),
        stable: vec![gateway.clone()],
        canary: vec![canary.clone()],
        from: None,
        to,
        held: Vec::new(),
        revisions,
        by_pods: true,
        hosts: Vec::new(),
    };
    let share = if all_pods == 0 {
        0.0
    } else {
        100.0 * canary_pods as f64 / all_pods as f64
    };
    let declared = match env.stage.value.as_str() {
        "prepare" => Declared::Prepare,
        "canary" => Declared::Shift(shift(share, None)),
        "upgrade" => Declared::Shift(shift(share, revisions)),
        "cleanup" => Declared::Cleanup(shift(0.0, revisions)),
        _ => Declared::Done,
    };
    crate::kinds::promise::Promise {
        entry: serde_json::json!({"stage": env.stage.value}),
        declared,
    }
}

/// What serves the gateway's connections at a stage, with the facts worth knowing: the pod
/// share (not a weight), the canary still running at `upgrade`, the HPA and budgets that count
/// the canary's pods. Shared by `status` and `explain`.
pub fn pod_notes(
    plan: &CheckedGatewayUpgrade,
    base: &Base,
    f: &Found<'_>,
    stage: &str,
) -> (Vec<crate::status::VersionTraffic>, Vec<String>) {
    use crate::status::VersionTraffic;
    let (canary, all) = pod_share(plan, f);
    let gateway_pods = all - canary;
    let pct = |n: u64| ((n * 100) as f64 / all.max(1) as f64).round() as u8;
    let mut traffic = Vec::new();
    let mut notes = Vec::new();
    let counted = if f.hpa.is_some() {
        " (counting the HPA's minReplicas)"
    } else {
        ""
    };
    let share = format!(
        "a pod share, not a weight: Service {} spreads connections over {all} pods, {canary} of them the canary's{counted}",
        f.service.name
    );
    match stage {
        "canary" => {
            traffic.push(VersionTraffic {
                version: "old".into(),
                workload: f.gateway.name.clone(),
                role: "gateway".into(),
                percent: pct(gateway_pods),
            });
            traffic.push(VersionTraffic {
                version: "new".into(),
                workload: plan.canary_name(),
                role: "canary".into(),
                percent: pct(canary),
            });
            notes.push(share);
        }
        "upgrade" => {
            traffic.push(VersionTraffic {
                version: "new".into(),
                workload: f.gateway.name.clone(),
                role: "gateway".into(),
                percent: pct(gateway_pods),
            });
            traffic.push(VersionTraffic {
                version: "new".into(),
                workload: plan.canary_name(),
                role: "canary".into(),
                percent: pct(canary),
            });
            notes.push(format!(
                "the canary Deployment {} still runs ({canary} pod(s), the new version) beside the upgraded gateway until cleanup; {share}",
                plan.canary_name()
            ));
        }
        "cleanup" | "done" => traffic.push(VersionTraffic {
            version: "new".into(),
            workload: f.gateway.name.clone(),
            role: "gateway".into(),
            percent: 100,
        }),
        _ => traffic.push(VersionTraffic {
            version: "old".into(),
            workload: f.gateway.name.clone(),
            role: "gateway".into(),
            percent: 100,
        }),
    }
    if matches!(stage, "canary" | "upgrade") {
        let mut labels = pods(&f.gateway.value);
        labels.insert(CANARY_LABEL.into(), "true".into());
        if let Some(r) = &plan.revision {
            labels.insert("istio.io/rev".into(), r.value.clone());
        }
        if let Some(h) = f.hpa
            && f.gateway
                .value
                .at("/spec/selector")
                .is_some_and(|s| selector::label_selector_matches(s, &labels))
        {
            notes.push(format!(
                "HorizontalPodAutoscaler {} scales Deployment {} only, yet counts the canary's pods too: they match that Deployment's selector, so its utilization average includes them",
                h.name, f.gateway.name
            ));
        }
        for pdb in budgets_over(base, &labels) {
            notes.push(format!(
                "PodDisruptionBudget {} also counts the canary's pods while it runs",
                pdb.name
            ));
        }
    }
    (traffic, notes)
}

/// `status` for a GatewayUpgrade: the pod share and the next step.
pub fn status(plan: &CheckedGatewayUpgrade) -> Vec<crate::status::EnvironmentStatus> {
    use crate::status::EnvironmentStatus;
    let base = crate::base::load(&plan.dir.join(&plan.base.value), &plan.root).ok();
    plan.environments
        .iter()
        .map(|e| {
            let name = e.name.value.clone();
            let overlay = super::overlay_state(render_plan(
                plan,
                std::slice::from_ref(&name),
                Mode::Overlay,
            ));
            let (traffic, notes) = match &base {
                Some(b) => match find(plan, b) {
                    Ok(f) => pod_notes(plan, b, &f, &e.stage.value),
                    Err(_) => (Vec::new(), Vec::new()),
                },
                None => (Vec::new(), Vec::new()),
            };
            let next = match super::next_stage(&STAGES, &e.stage.value) {
                Some(n) => format!("{n}: {}", summary(n)),
                None => "done: the plan can be deleted".into(),
            };
            EnvironmentStatus {
                environment: name.clone(),
                stage: e.stage.value.clone(),
                weight: None,
                traffic,
                mirrored: None,
                notes,
                overlay,
                output: crate::output::diff::shown(&plan.output.join(&name)),
                next,
                pending: Vec::new(),
            }
        })
        .collect()
}

/// `explain`'s lines for one environment: where the gateway's connections go by pods.
pub fn explain_lines(plan: &CheckedGatewayUpgrade, env: Option<&str>) -> Result<Vec<String>> {
    let base = super::load_base(
        &plan.dir,
        &plan.base,
        &plan.root,
        plan.diag(plan.base.pos, String::new()),
    )?;
    let f = find(plan, &base)?;
    let mut out = Vec::new();
    for e in plan
        .environments
        .iter()
        .filter(|e| env.is_none_or(|n| n == e.name.value))
    {
        let (traffic, notes) = pod_notes(plan, &base, &f, &e.stage.value);
        out.push(format!(
            "gateway {} ({}, stage {}): {}",
            f.gateway.name,
            e.name.value,
            e.stage.value,
            traffic
                .iter()
                .map(|t| format!(
                    "{}% {} ({}, {} version)",
                    t.percent, t.workload, t.role, t.version
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.extend(notes.into_iter().map(|n| format!("  {n}")));
    }
    Ok(out)
}

/// What moving to a stage changes.
pub fn summary(stage: &str) -> &'static str {
    match stage {
        "canary" => "the canary gateway Deployment (new version) starts beside the gateway",
        "upgrade" => "the gateway itself gets the new version; the canary stays",
        "cleanup" => "the canary gateway Deployment is removed",
        "done" => "nothing beyond the base (which must hold the new version)",
        _ => "checks only",
    }
}

/// Every environment's final stream over `base` (fuzzing and benchmarks: the same path as
/// `render --stdout`).
pub fn render_text(plan: &CheckedGatewayUpgrade, base: &Base) -> Result<Vec<String>> {
    let mut d = Diagnostics::default();
    let mut out = Vec::new();
    for env in &plan.environments {
        let one = find(plan, base).and_then(|f| {
            check_target(plan, env, base, &f)?;
            let rendered = render(plan, env, base, &f)?;
            let objects = crate::output::stream::final_objects(base, &rendered)?;
            check(plan, env, &f, &objects)?;
            Ok(crate::yaml::to_stream(&objects))
        });
        if let Some(s) = d.take(one) {
            out.push(s);
        }
    }
    d.into_result()?;
    Ok(out)
}
