//! `kind: RevisionUpgrade`: Istio's canary upgrade of the control plane as stages. Each wave
//! moves its namespaces to the new revision (`istio.io/rev: <to>`, or with revision tags the
//! canary tag; `istio-injection` removed, since it takes precedence) and restarts their
//! workloads declaratively (a pod-template annotation, what `kubectl rollout restart` does);
//! with tags, `promote-tags` points the stable tag's webhook at the new revision and restarts
//! the namespaces still on it. `done` needs the end state in base. Going back is the rollback.

pub mod init;
pub mod kind;
pub mod plan;

use crate::pointer::Pointer as _;
pub use kind::REGISTRATION;

use serde_json::{Map, Value, json};

use crate::base::{Base, BaseObject};
use crate::error::{Diagnostics, Result};
use crate::mesh_upgrade::plan::Env;
use crate::render::{EnvironmentRender, Mode};
use crate::rendered::{Patch, PatchBody, Rendered, Target};

/// The injection resolver, shared with GatewayUpgrade (`mesh_upgrade::injection`).
pub use crate::mesh_upgrade::injection;
pub use plan::CheckedRevisionUpgrade;

use injection::{INJECTION, Injected, Injection, REV};

/// The pod-template annotation whose change re-creates the pods (and so re-injects them).
pub const RESTART_ANNOTATION: &str = "canaryplan.io/istio-revision";

fn tag_webhook(tag: &str) -> String {
    format!("{}{tag}", injection::TAG_WEBHOOK_PREFIX)
}

fn labels(o: &BaseObject) -> Map<String, Value> {
    o.value
        .at("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The label value a moved namespace gets: the new revision, or the canary tag.
fn new_label(plan: &CheckedRevisionUpgrade) -> String {
    match &plan.tags {
        Some((_, Some(canary))) => canary.value.clone(),
        _ => plan.to.value.clone(),
    }
}

fn base_values(base: &Base) -> Vec<Value> {
    base.objects.iter().map(|o| o.value.clone()).collect()
}

fn moved_in_waves(plan: &CheckedRevisionUpgrade, ns: &str) -> bool {
    plan.waves.iter().flatten().any(|n| n.value == ns)
}

/// The tags `promote-tags` points at the new revision: every tag of the base whose webhooks or
/// label are on the old revision (the stable tag, `default`, any other), but the canary tag.
fn tags_to_move<'a>(
    plan: &CheckedRevisionUpgrade,
    model: &'a Injection,
) -> Vec<&'a injection::TagRoute> {
    let canary = plan.tags.as_ref().and_then(|(_, c)| c.as_ref());
    model
        .tags
        .iter()
        .filter(|t| t.touches(&plan.from.value))
        .filter(|t| canary.is_none_or(|c| c.value != t.tag))
        .collect()
}

/// Whether some object of the base serves `revision`: its istiod Service, or a webhook
/// configuration (a tag, or the revision's own injector) reaching it.
fn served(base: &Base, model: &Injection, revision: &str) -> bool {
    let service = if revision == injection::DEFAULT_REVISION {
        "istiod".to_string()
    } else {
        format!("istiod-{revision}")
    };
    base.of_kind("Service").any(|s| s.name == service)
        || model.tags.iter().any(|t| t.revision() == Some(revision))
        || base.of_kind("MutatingWebhookConfiguration").any(|w| {
            injection::tag_of(&w.value).is_none()
                && labels(w).get(REV).and_then(Value::as_str) == Some(revision)
        })
}

/// Checks what the plan names against the base: every namespace there, the new revision
/// served, the tag webhooks, and nothing on the old revision that no stage moves.
fn check_base(
    plan: &CheckedRevisionUpgrade,
    base: &Base,
    model: &Injection,
    stage: &str,
) -> Result<()> {
    let mut d = Diagnostics::default();
    for ns in plan.waves.iter().flatten() {
        if base.find("Namespace", &ns.value).is_none() {
            let known: Vec<&str> = base.of_kind("Namespace").map(|n| n.name.as_str()).collect();
            let hint = match crate::names::did_you_mean(&ns.value, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("add its Namespace to the base {}", base.path.display()),
            };
            d.push(
                plan.diag(
                    ns.pos,
                    format!("namespace `{}` is not in the base", ns.value),
                )
                .hint(hint),
            );
        }
    }
    if !served(base, model, &plan.to.value) {
        let known: Vec<String> = base
            .of_kind("Service")
            .filter_map(|s| injection::revision_of_service(&s.name))
            .chain(
                model
                    .tags
                    .iter()
                    .flat_map(|t| t.revisions())
                    .map(str::to_string),
            )
            .collect();
        let hint = match crate::names::did_you_mean(
            &plan.to.value,
            known.iter().map(String::as_str),
        ) {
            Some(s) => format!("did you mean `{s}`? the base serves {}", known.join(", ")),
            None => format!(
                "add the new revision's Service `istiod-{}` (istio-discovery chart, `revision: {}`) or a tag webhook reaching it to the base, so pods moved to it find an injector",
                plan.to.value, plan.to.value
            ),
        };
        d.push(
            plan.diag(plan.to.pos, format!("no injector in the base serves revision {}: no Service istiod-{} and no webhook reaching it", plan.to.value, plan.to.value))
                .hint(hint),
        );
    }
    match &plan.tags {
        Some((stable, canary)) => {
            let roles = std::iter::once((stable, &plan.from, "stable"))
                .chain(canary.iter().map(|c| (c, &plan.to, "canary")));
            for (tag, want, role) in roles {
                match base.find("MutatingWebhookConfiguration", &tag_webhook(&tag.value)) {
                    None => d.push(
                        plan.diag(tag.pos, format!("the base has no MutatingWebhookConfiguration `{}` for the {role} tag", tag_webhook(&tag.value)))
                            .hint("add the tag webhooks as the istiod chart's revision-tags template renders them (`istioctl tag generate`)"),
                    ),
                    Some(w) => {
                        let route = model.tag(&tag.value);
                        let rev = route.and_then(|t| t.revision()).map(str::to_string);
                        // At done the base holds the end state: the stable tag is on the new revision.
                        if rev.as_deref() != Some(want.value.as_str()) && stage != "done" {
                            let on = route.map(|t| t.revisions().join(" and ")).filter(|r| !r.is_empty()).unwrap_or_else(|| "no known revision".into());
                            d.push(
                                w.error(&["metadata", "labels"], format!("tag {} sends to {on} (label {REV}: {}), not to revision {}", tag.value, route.and_then(|t| t.label.clone()).unwrap_or_else(|| "none".into()), want.value))
                                    .hint(format!("the {role} tag must point at `{}` when the upgrade starts, with its label and every webhook's istiod", want.value)),
                            );
                        }
                    }
                }
            }
        }
        None => {
            for t in model.tags.iter().filter(|t| t.touches(&plan.from.value)) {
                if let Some(w) = base.find("MutatingWebhookConfiguration", &t.object) {
                    d.push(
                        w.error(&["webhooks"], format!("tag {} sends pods to revision {}, and this plan moves no tag: after the uninstall every pod it injects is rejected (failurePolicy: Fail)", t.tag, plan.from.value))
                            .hint(format!("add `tags: {{stable: {}}}` to the plan: its promote-tags stage points the tag at {} (`istioctl tag set {} --revision {}`)", t.tag, plan.to.value, t.tag, plan.to.value)),
                    );
                }
            }
        }
    }
    if stage != "done" {
        for n in &model.namespaces {
            let via_moved_tag = plan.tags.is_some()
                && matches!(&n.injected, Injected::Revision { via, .. } if via.starts_with("tag "));
            if n.injected.revision() == Some(plan.from.value.as_str())
                && !moved_in_waves(plan, &n.name)
                && !via_moved_tag
                && let Some(o) = base.find("Namespace", &n.name)
            {
                d.push(
                    o.error(&["metadata", "labels"], format!("namespace {} is on revision {} ({}) and in no wave: it would keep the old revision, and block its uninstall", n.name, plan.from.value, match &n.injected { Injected::Revision { via, .. } => via.as_str(), _ => "" }))
                        .hint(format!("add `{}` to a wave of the plan", n.name)),
                );
            }
        }
    }
    d.into_result()
}

/// The merge patch of one namespace moved to the new revision.
fn move_namespace(n: &BaseObject, to_label: &str, out: &mut Rendered) {
    let mut l = Map::new();
    if labels(n).contains_key(INJECTION) {
        l.insert(INJECTION.into(), Value::Null);
    }
    l.insert(REV.into(), json!(to_label));
    out.patches.push(Patch::merge(
        format!("patch-namespace-{}.yaml", n.name),
        format!("namespace {} on {to_label}", n.name),
        Target::of(n),
        json!({"metadata": {"labels": l}}),
    ));
}

/// The URL a tag webhook gets on the new revision: the new revision's own injector's URL in
/// base, else the old URL with `istiod-<from>` in its host renamed.
fn new_url(plan: &CheckedRevisionUpgrade, base: &Base, old: &str) -> Option<String> {
    let own = base
        .of_kind("MutatingWebhookConfiguration")
        .filter(|w| {
            injection::tag_of(&w.value).is_none()
                && labels(w).get(REV).and_then(Value::as_str) == Some(plan.to.value.as_str())
        })
        .flat_map(|w| {
            w.value
                .get("webhooks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find_map(|h| {
            h.at("/clientConfig/url")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    if own.is_some() {
        return own;
    }
    let host = injection::url_host(old);
    let first = host.split('.').next().unwrap_or(host);
    let old_service = format!("istiod-{}", plan.from.value);
    (first == old_service).then(|| {
        let new_host = host.replacen(&old_service, &format!("istiod-{}", plan.to.value), 1);
        old.replacen(host, &new_host, 1)
    })
}

/// The JSON patch pointing one tag at the new revision: its label and every injector
/// webhook's istiod, by Service name or by URL.
fn move_tag(
    plan: &CheckedRevisionUpgrade,
    base: &Base,
    t: &injection::TagRoute,
    d: &mut Diagnostics,
) -> Option<Patch> {
    let w = base.find("MutatingWebhookConfiguration", &t.object)?;
    let mut ops = vec![json!({
        "op": if t.label.is_some() { "replace" } else { "add" },
        "path": "/metadata/labels/istio.io~1rev",
        "value": plan.to.value,
    })];
    if !w.value.at("/metadata/labels").is_some_and(Value::is_object) {
        ops.insert(
            0,
            json!({"op": "add", "path": "/metadata/labels", "value": {}}),
        );
    }
    let service = if plan.to.value == injection::DEFAULT_REVISION {
        "istiod".to_string()
    } else {
        format!("istiod-{}", plan.to.value)
    };
    for (i, hook) in w
        .value
        .get("webhooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let target = t.webhooks.get(i);
        if target.is_some_and(|h| h.revision.as_deref() == Some(plan.to.value.as_str())) {
            continue;
        }
        if hook.at("/clientConfig/service/name").is_some() {
            ops.push(json!({"op": "replace", "path": format!("/webhooks/{i}/clientConfig/service/name"), "value": service}));
        } else if let Some(u) = hook.at("/clientConfig/url").and_then(Value::as_str) {
            match new_url(plan, base, u) {
                Some(n) => ops.push(json!({"op": "replace", "path": format!("/webhooks/{i}/clientConfig/url"), "value": n})),
                None => d.push(
                    w.error(&["webhooks"], format!("webhook {} of tag {} reaches its istiod by url {u}, and the base does not say the new revision's url", hook.get("name").and_then(Value::as_str).unwrap_or_default(), t.tag))
                        .hint(format!("add revision {}'s own injector webhook (MutatingWebhookConfiguration `istio-sidecar-injector-{}` with its clientConfig.url) to the base, so the tag can be pointed at that url", plan.to.value, plan.to.value)),
                ),
            }
        }
    }
    Some(Patch {
        file: format!("patch-mutatingwebhookconfiguration-{}.yaml", w.name),
        from: format!("tag {} moved to revision {}", t.tag, plan.to.value),
        target: Target::of(w),
        body: PatchBody::Json(ops),
    })
}

/// The restart of one workload: the pod-template annotation, what `kubectl rollout restart`
/// does (Argo Rollouts' pods are re-created by the same template change).
fn restart(plan: &CheckedRevisionUpgrade, w: &BaseObject, why: &str) -> Patch {
    let template = if w.kind == "CronJob" {
        json!({"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: plan.to.value}}}}}}})
    } else {
        json!({"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: plan.to.value}}}}})
    };
    Patch::merge(
        format!(
            "patch-{}-{}-{}.yaml",
            w.kind.to_ascii_lowercase(),
            w.namespace().unwrap_or("default"),
            w.name
        ),
        format!("{} {} {why}", w.kind, w.name),
        Target::of(w),
        template,
    )
}

fn base_workload<'a>(base: &'a Base, w: &injection::WorkloadInjection) -> Option<&'a BaseObject> {
    base.objects.iter().find(|o| {
        o.kind == w.kind && o.name == w.name && o.namespace().unwrap_or("default") == w.namespace
    })
}

fn annotated(o: &BaseObject, value: &str) -> bool {
    let path = if o.kind == "CronJob" {
        "/spec/jobTemplate/spec/template/metadata/annotations"
    } else {
        "/spec/template/metadata/annotations"
    };
    o.value
        .at(path)
        .and_then(|a| a.get(RESTART_ANNOTATION))
        .and_then(Value::as_str)
        == Some(value)
}

/// What a stage renders, and the injection model of the base it was rendered from.
pub fn render(plan: &CheckedRevisionUpgrade, env: &Env, base: &Base) -> Result<Rendered> {
    let before = Injection::of(&base_values(base));
    let stage = env.stage.value.as_str();
    check_base(plan, base, &before, stage)?;
    let mut out = Rendered::default();
    if stage == "done" {
        let left = before.on_revision(&plan.from.value);
        if !left.is_empty() {
            return Err(plan
                .diag(
                    env.stage.pos,
                    format!(
                        "at done the base alone would leave pods on revision {}",
                        plan.from.value
                    ),
                )
                .hint(format!(
                    "commit the end state to the base `{}` first (namespaces on {}, every tag webhook sending to istiod-{}); still on {}: {}",
                    plan.base.value,
                    new_label(plan),
                    plan.to.value,
                    plan.from.value,
                    left.join("; ")
                ))
                .into());
        }
        // The restart annotation stays on what the waves restarted: its removal would roll
        // every workload once more on a commit that changes nothing else.
        for w in before
            .workloads
            .iter()
            .filter(|w| w.injected.revision() == Some(plan.to.value.as_str()))
        {
            if let Some(o) = base_workload(base, w)
                && !annotated(o, &plan.to.value)
            {
                out.patches.push(restart(
                    plan,
                    o,
                    "keeps its restart annotation (no second restart)",
                ));
            }
        }
        return Ok(out);
    }
    let label = new_label(plan);
    for ns in plan.waves.iter().take(plan.waves_at(stage)).flatten() {
        if let Some(n) = base.find("Namespace", &ns.value) {
            move_namespace(n, &label, &mut out);
        }
    }
    if stage == "promote-tags" {
        let mut d = Diagnostics::default();
        for t in tags_to_move(plan, &before) {
            if let Some(p) = move_tag(plan, base, t, &mut d) {
                out.patches.push(p);
            }
        }
        d.into_result()?;
    }
    // Restart exactly the workloads whose injecting revision this stage changes (Rollouts
    // included); what the injector skips is left alone.
    let after = Injection::of(&crate::output::stream::final_objects(base, &out)?);
    let mut restarts = Vec::new();
    for w in &after.workloads {
        let was = before
            .workload(&w.kind, &w.namespace, &w.name)
            .map(|b| &b.injected);
        if let (Some(now), Some(was)) = (w.injected.revision(), was)
            && was.revision() != Some(now)
            && let Some(o) = base_workload(base, w)
        {
            restarts.push(restart(plan, o, &format!("restarted onto revision {now}")));
        }
    }
    out.patches.extend(restarts);
    Ok(out)
}

/// The checks on the final objects: a namespace labelled both ways, a tag half-moved.
fn check(plan: &CheckedRevisionUpgrade, env: &Env, base: &Base, objects: &[Value]) -> Result<()> {
    let mut d = Diagnostics::default();
    for o in objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Namespace"))
    {
        let l = o.at("/metadata/labels").and_then(Value::as_object);
        if l.is_some_and(|l| l.contains_key(INJECTION) && l.contains_key(REV)) {
            let name = o
                .at("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let diag = match base.find("Namespace", name) {
                Some(n) => n.error(&["metadata", "labels"], format!("namespace {name} has both `{INJECTION}` and `{REV}`: `{INJECTION}` takes precedence, so its revision label is ignored")),
                None => plan.diag(env.stage.pos, format!("namespace {name} has both `{INJECTION}` and `{REV}`")),
            };
            d.push(diag.hint(format!("remove `{INJECTION}` from it in base (a wave removes it from the namespaces it moves)")));
        }
    }
    for t in &Injection::of(objects).tags {
        let label = t.label.as_deref().unwrap_or("none");
        if t.revisions().iter().any(|r| *r != label) || t.revisions().len() > 1 {
            let diag = match base.find("MutatingWebhookConfiguration", &t.object) {
                Some(w) => w.error(&["webhooks"], String::new()),
                None => plan.diag(env.stage.pos, String::new()),
            };
            let mut diag = diag;
            diag.message = format!(
                "tag {} is half-moved: its label {REV} says {label}, its webhooks reach {}",
                t.tag,
                t.webhooks
                    .iter()
                    .map(|w| format!("{} ({})", w.revision.as_deref().unwrap_or("unknown"), w.by))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            d.push(diag.hint("point the label and every webhook (clientConfig.service.name or clientConfig.url) at one revision"));
        }
    }
    d.into_result()
}

/// The revision each namespace's pods get on their next injection, read from the final objects.
pub fn revisions(objects: &[Value]) -> Vec<(String, String)> {
    Injection::of(objects)
        .namespaces
        .into_iter()
        .filter(|n| !matches!(n.injected, Injected::Not { .. }))
        .map(|n| (n.name, n.injected.text()))
        .collect()
}

pub fn render_plan(
    plan: &CheckedRevisionUpgrade,
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

/// What a stage promises (`kinds::promise`): no traffic moves; each wave moves its
/// namespaces' workloads to the new revision, `promote-tags` every namespace still on the old.
fn promise(
    plan: &CheckedRevisionUpgrade,
    env: &Env,
    base: &Base,
) -> crate::kinds::promise::Promise {
    use crate::invariants::{Declared, Revisions};
    let stage = env.stage.value.as_str();
    let to = plan.to.value.clone();
    // A pod template that names the old revision itself (`istio.io/rev: <from>`) stays on it
    // whatever its namespace says: the waves and tags leave it, and `status` lists it as
    // holding the old revision.
    let pinned: Vec<String> = base
        .objects
        .iter()
        .filter(|o| {
            let label = o
                .value
                .at("/spec/template/metadata/labels/istio.io~1rev")
                .and_then(Value::as_str);
            label == Some(plan.from.value.as_str())
        })
        .map(|o| {
            o.value
                .at("/metadata/namespace")
                .and_then(Value::as_str)
                .map_or(o.name.clone(), |ns| format!("{ns}/{}", o.name))
        })
        .collect();
    let declared = match stage {
        "prepare" => Declared::Prepare,
        "done" => Declared::Done,
        "promote-tags" => Declared::Waves(Revisions {
            namespaces: vec!["*".to_string()],
            workloads: Vec::new(),
            to,
            pinned,
        }),
        _ => Declared::Waves(Revisions {
            namespaces: plan
                .waves
                .iter()
                .take(plan.waves_at(stage))
                .flatten()
                .map(|n| n.value.clone())
                .collect(),
            workloads: Vec::new(),
            to,
            pinned,
        }),
    };
    crate::kinds::promise::Promise {
        entry: serde_json::json!({"stage": stage}),
        declared,
    }
}

fn render_environment(
    plan: &CheckedRevisionUpgrade,
    env: &Env,
    base: &Base,
    mode: Mode,
) -> Result<EnvironmentRender> {
    let rendered = render(plan, env, base)?;
    let objects = crate::output::stream::final_objects(base, &rendered)?;
    check(plan, env, base, &objects)?;
    let moved = plan.waves_at(&env.stage.value);
    let traffic = format!(
        "{} of {} waves on {}",
        moved,
        plan.waves.len(),
        plan.to.value
    );
    let ladder = plan.ladder();
    super::environment_render(
        super::Written {
            plan_name: &plan.name,
            plan_path: &plan.path,
            plan_dir: &plan.dir,
            root: &plan.root,
            output_dir: plan.output.join(&env.name.value),
            environment: &env.name.value,
            stage: &env.stage.value,
            ladder: &ladder,
            stage_at: plan.diag(env.stage.pos, String::new()),
            bases: vec![(base, plan.diag(plan.base.pos, String::new()))],
            traffic,
            promise: promise(plan, env, base),
        },
        &rendered,
        objects,
        mode,
    )
}

/// What moving to a stage changes.
pub fn summary(stage: &str) -> &'static str {
    match stage {
        s if s.starts_with("wave-") => {
            "this wave's namespaces move to the new revision and the workloads it re-injects restart"
        }
        "promote-tags" => {
            "every tag still on the old revision (the stable one, `default`) points at the new one; what it re-injects restarts"
        }
        "done" => {
            "nothing beyond the base (which must hold the end state) but the restart annotations, kept so nothing restarts again"
        }
        _ => "checks only",
    }
}

/// The notes of one environment's final stream: the revision of each namespace, what the
/// stage restarts and skips, and whether anything still needs the old revision.
pub fn notes(plan: &CheckedRevisionUpgrade, base: &Base, objects: &[Value]) -> Vec<String> {
    let model = Injection::of(objects);
    let before = Injection::of(&base_values(base));
    let mut notes: Vec<String> = revisions(objects)
        .into_iter()
        .map(|(ns, rev)| format!("namespace {ns}: revision {rev}"))
        .collect();
    for t in &model.tags {
        let hooks: Vec<&str> = t.revisions();
        notes.push(format!(
            "tag {}: revision {} ({} webhook(s))",
            t.tag,
            if hooks.is_empty() {
                "unknown".to_string()
            } else {
                hooks.join(" and ")
            },
            t.webhooks.len()
        ));
    }
    let restart_of = |kind: &str, ns: &str, name: &str| {
        objects
            .iter()
            .find(|o| {
                o.get("kind").and_then(Value::as_str) == Some(kind)
                    && o.at("/metadata/name").and_then(Value::as_str) == Some(name)
                    && o.at("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("default")
                        == ns
            })
            .and_then(|o| {
                o.at("/spec/template/metadata/annotations")
                    .or_else(|| o.at("/spec/jobTemplate/spec/template/metadata/annotations"))
            })
            .and_then(|a| a.get(RESTART_ANNOTATION))
            .is_some()
    };
    let touched: Vec<&str> = plan
        .waves
        .iter()
        .flatten()
        .map(|n| n.value.as_str())
        .collect();
    let mut restarted = Vec::new();
    let mut skipped = Vec::new();
    for w in &model.workloads {
        let was = before.workload(&w.kind, &w.namespace, &w.name);
        if restart_of(&w.kind, &w.namespace, &w.name) {
            restarted.push(format!(
                "{} (revision {})",
                w.id(),
                w.injected.revision().unwrap_or("none")
            ));
        } else if let Injected::Not { why } = &w.injected
            && (touched.contains(&w.namespace.as_str())
                || was.is_some_and(|b| b.injected != w.injected))
        {
            skipped.push(format!("{} ({why})", w.id()));
        }
    }
    if !restarted.is_empty() {
        notes.push(format!("restart annotation on: {}", restarted.join(", ")));
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "not restarted, the injector skips them: {}",
            skipped.join(", ")
        ));
    }
    let left = model.on_revision(&plan.from.value);
    if left.is_empty() {
        notes.push(format!(
            "nothing in the rendered stream resolves to revision {} (no namespace, tag webhook or pod template): it can be uninstalled once the cluster agrees",
            plan.from.value
        ));
        notes.push(format!(
            "check the cluster too: run `istioctl proxy-status` and see that no proxy's ISTIOD is istiod-{}-… (a pod not restarted since, or created outside git, still runs the old sidecar)",
            plan.from.value
        ));
    } else {
        notes.push(format!(
            "revision {} cannot be uninstalled yet, still needed by: {}",
            plan.from.value,
            left.join("; ")
        ));
    }
    notes
}

/// `status`: per namespace, the revision its workloads run after the sync.
pub fn status(plan: &CheckedRevisionUpgrade) -> Vec<crate::status::EnvironmentStatus> {
    let base = super::load_base(
        &plan.dir,
        &plan.base,
        &plan.root,
        plan.diag(plan.base.pos, String::new()),
    )
    .ok();
    plan.environments
        .iter()
        .map(|e| {
            let name = e.name.value.clone();
            let renders = render_plan(plan, std::slice::from_ref(&name), Mode::Overlay);
            let objects = render_plan(plan, std::slice::from_ref(&name), Mode::Stream)
                .ok()
                .and_then(|r| r.into_iter().next())
                .map(|r| r.objects);
            let notes = match (&base, &objects) {
                (Some(b), Some(o)) => notes(plan, b, o),
                _ => Vec::new(),
            };
            let ladder = plan.ladder();
            let next = match super::next_stage(&ladder, &e.stage.value) {
                Some(n) => format!("{n}: {}", summary(n)),
                None => "done: the plan can be deleted once the restart annotations are in base (or one more restart is accepted)".into(),
            };
            crate::status::EnvironmentStatus {
                environment: name.clone(),
                stage: e.stage.value.clone(),
                weight: None,
                traffic: Vec::new(),
                mirrored: None,
                notes,
                overlay: super::overlay_state(renders),
                output: crate::output::diff::shown(&plan.output.join(&name)),
                next,
                pending: Vec::new(),
            }
        })
        .collect()
}

/// Every environment's final stream over `base` (fuzzing and benchmarks: the same path as
/// `render --stdout`).
pub fn render_text(plan: &CheckedRevisionUpgrade, base: &Base) -> Result<Vec<String>> {
    let mut d = Diagnostics::default();
    let mut out = Vec::new();
    for env in &plan.environments {
        let one = render(plan, env, base).and_then(|rendered| {
            let objects = crate::output::stream::final_objects(base, &rendered)?;
            check(plan, env, base, &objects)?;
            Ok(crate::yaml::to_stream(&objects))
        });
        if let Some(s) = d.take(one) {
            out.push(s);
        }
    }
    d.into_result()?;
    Ok(out)
}
