//! `canaryplan init --from-rollout FILE`: a plan from an Argo Rollouts `Rollout` and what its
//! folder holds (VirtualServices, DestinationRule, HTTPRoutes, Services, AnalysisTemplates),
//! and the base changes that replace the controller (the Rollout becomes a Deployment; with
//! host-level routing, the routes lose their canary Service). Every field of the Rollout is
//! carried over or named in `dropped`; the plan is built as data, written by the serializer,
//! and checked (parsed back, then rendered against the changed base) before `init` writes it.

mod analysis;
mod ledger;
mod routing;
mod steps;
mod verify;

use crate::pointer::Pointer as _;
pub use ledger::Ledger;
use ledger::short;
pub use routing::Router;

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::error::{Diagnostic, Result};
use crate::output::overlay::relative;
use crate::yaml::{self, Source};

/// What `init --from-rollout` produces.
#[derive(Debug)]
pub struct Migration {
    /// The plan's text.
    pub plan: String,
    /// The objects to commit in the base in place of the ones they replace (a YAML stream,
    /// each object headed by a comment saying which).
    pub base_changes: String,
    /// Settings of the Rollout the plan does not carry over (`--strict` refuses them).
    pub dropped: Vec<String>,
    /// What was carried over in another form.
    pub notes: Vec<String>,
}

pub(crate) fn s<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.at(p).and_then(Value::as_str)
}

/// Text that goes into a comment: one line, no control characters.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Every object of the YAML files in `dir` (not below it).
fn objects_in(dir: &Path, root: &crate::fsio::Root) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| crate::error::Error::io("list", dir, &e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml") && p.is_file())
        .collect();
    files.sort();
    for f in files {
        let source = Source::read(&f, root)?;
        out.extend(
            yaml::parse_values(&source)?
                .into_iter()
                .filter(|v| v.is_object()),
        );
    }
    Ok(out)
}

/// A refusal about the Rollout file: what is wrong and what to do.
pub(crate) fn refuse(
    file: &Path,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> crate::error::Error {
    Diagnostic::new(message).in_file(file).hint(hint).into()
}

pub(crate) fn find<'a>(all: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    all.iter()
        .find(|o| s(o, "/kind") == Some(kind) && s(o, "/metadata/name") == Some(name))
}

/// The Rollout and what its folder holds.
pub(crate) struct App<'a> {
    file: &'a Path,
    dir: &'a Path,
    name: &'a str,
    canary: &'a Value,
    all: &'a [Value],
}

/// Converts the Rollout in `file` to a plan written at `plan_path`. With `strict`, a
/// setting that does not carry over is an error instead of a note.
pub fn migrate(file: &Path, plan_path: &Path, strict: bool) -> Result<Migration> {
    // The boundary of what is read is the Rollout's repository, never where the plan goes.
    let root = crate::fsio::Root::of_sources(file.parent().unwrap_or(Path::new("")))?;
    let plan_dir = plan_path.parent().unwrap_or(Path::new(""));
    let source = Source::read(file, &root)?;
    let docs = yaml::parse_values(&source)?;
    let rollout = the_rollout(file, &docs)?;
    let name = s(rollout, "/metadata/name").unwrap_or("app").to_string();
    let dir = file.parent().unwrap_or(Path::new("."));
    let all = base_objects(dir, &root)?;
    let mut ledger = Ledger::default();
    for p in CARRIED {
        ledger.carry(p);
    }
    let canary = canary_strategy(file, &name, rollout)?;

    // The pod template and what replaces the Rollout in base.
    let app = App {
        file,
        dir,
        name: &name,
        canary,
        all: &all,
    };
    let workload_ref = s(rollout, "/spec/workloadRef/name").map(str::to_string);
    let deployment = deployment(&app, rollout, workload_ref.as_deref(), &mut ledger)?;
    let template = deployment
        .at("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let workload = s(&deployment, "/metadata/name")
        .unwrap_or(&name)
        .to_string();
    let Some(image) = s(&template, "/spec/containers/0/image").map(str::to_string) else {
        return Err(refuse(
            file,
            format!("Rollout {name} has no pod template with a container image"),
            "a plan pins the stable image: give the Rollout (or its workloadRef Deployment) its pod template and run init again",
        ));
    };
    let pod_labels = template.at("/metadata/labels").cloned();
    let namespace = s(rollout, "/metadata/namespace").map(str::to_string);

    let routing = routing::read(&app, pod_labels.as_ref(), &mut ledger)?;
    let service_object = service_object(&app, &routing.service)?;

    // Steps and analysis.
    let names = analysis::Names {
        service: &routing.service,
        namespace: namespace.as_deref(),
        workload: &workload,
        rollout,
    };
    let (converted, plan_analysis) = steps_and_analysis(&app, routing.router, &names, &mut ledger);

    // Every other field of the Rollout is named.
    ledger.account(rollout, "");

    // The plan, as data.
    let Some(key) = selector_key(&deployment, service_object) else {
        return Err(refuse(
            file,
            format!("Rollout {name} has no selector matchLabels"),
            "give it `selector.matchLabels` (a Deployment needs them) and run init again",
        ));
    };
    let key_value = label_value(&deployment, &key).unwrap_or(&name).to_string();
    let folder = relative(plan_dir, dir).unwrap_or_else(|| dir.display().to_string());
    let plan = plan(&PlanParts {
        name: &name,
        base: if folder.is_empty() { "." } else { &folder },
        routing: &routing,
        workload: &workload,
        image: &image,
        key: &key,
        key_value: &key_value,
        converted: &converted,
        analysis: plan_analysis,
    });

    // The base changes, headed by what each replaces.
    let base_changes = base_changes(
        file,
        &name,
        workload_ref.as_deref(),
        &deployment,
        &routing.changed,
    );
    let header = header(file, &name, &ledger);
    let text = format!("{header}{}", yaml::to_yaml(&plan));

    let replaced = verify::Replacements {
        rollout: name.clone(),
        deployment: deployment.clone(),
        workload_ref: workload_ref.is_some(),
        changed: routing.changed.iter().map(|(_, o)| o.clone()).collect(),
    };
    verify::plan_validates(&text, &plan, plan_path, &root, dir, file, &replaced)?;
    if strict && !ledger.dropped.is_empty() {
        return Err(strict_refusal(file, &name, &ledger));
    }
    Ok(Migration {
        plan: text,
        base_changes,
        dropped: ledger.dropped,
        notes: ledger.notes,
    })
}

/// The Rollout's steps converted (with the managed routes their header and mirror steps
/// need), and its analysis as the plan's.
fn steps_and_analysis(
    app: &App<'_>,
    router: Router,
    names: &analysis::Names<'_>,
    ledger: &mut Ledger,
) -> (steps::Converted, Option<Value>) {
    let (canary, all) = (app.canary, app.all);
    let step_list: Vec<Value> = canary
        .get("steps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let converted = steps::convert(&step_list, router, ledger);
    if converted.matches.is_some() || converted.mirror.is_some() {
        ledger.carry("/spec/strategy/canary/trafficRouting/managedRoutes");
    }
    if canary.get("analysis").is_some() {
        ledger.carry("/spec/strategy/canary/analysis");
    }
    let index = &converted.export_index;
    let starting_step = |argo: usize| index.iter().skip(argo).find_map(|i| *i);
    let plan_analysis = analysis::convert(
        canary.get("analysis"),
        &converted.analysis_steps,
        starting_step,
        all,
        names,
        ledger,
    );
    if canary.get("analysis").is_some() && plan_analysis.is_none() {
        ledger.drop("the analysis: none of its metrics could be carried over (see above)");
    }
    (converted, plan_analysis)
}

/// What the plan is made of.
struct PlanParts<'a> {
    name: &'a str,
    /// The base folder, relative to the plan.
    base: &'a str,
    routing: &'a routing::Routing,
    workload: &'a str,
    image: &'a str,
    /// The selector label the stable copy changes, and its value in the Deployment.
    key: &'a str,
    key_value: &'a str,
    converted: &'a steps::Converted,
    analysis: Option<Value>,
}

/// The CanaryPlan, as data: the routing, the two versions, the steps, the analysis, and one
/// environment at prepare.
fn plan(p: &PlanParts<'_>) -> Value {
    let PlanParts {
        name,
        routing,
        key,
        converted,
        ..
    } = p;
    let router = routing.router;
    let mut spec = Map::new();
    if router == Router::GatewayApi {
        spec.insert("traffic".into(), json!("gateway-api"));
        spec.insert("httpRoutes".into(), json!(routing.http_routes));
    }
    spec.insert("base".into(), json!(p.base));
    spec.insert("service".into(), json!(routing.service));
    spec.insert("workload".into(), json!(p.workload));
    routing_fields(&mut spec, &routing.virtual_services);
    let (stable, canary_version) = versions(p.image, key, p.key_value, router, &routing.istio);
    spec.insert("stable".into(), stable);
    spec.insert("canary".into(), canary_version);
    if router != Router::GatewayApi {
        spec.insert("podLabels".into(), json!({"applicationName": name}));
        spec.insert(
            "selector".into(),
            json!({"remove": [key], "add": {"applicationName": name}}),
        );
    }
    if let Some(m) = &converted.matches {
        spec.insert("match".into(), json!([m]));
    }
    if let Some(m) = converted.mirror {
        spec.insert("mirror".into(), json!(m));
    }
    spec.insert("steps".into(), Value::Array(plan_steps(converted)));
    if let Some(a) = &p.analysis {
        spec.insert("analysis".into(), a.clone());
    }
    spec.insert(
        "environments".into(),
        json!({"production": {"stage": "prepare"}}),
    );
    json!({
        "apiVersion": crate::plan_file::API_VERSION,
        "kind": crate::kinds::canary::plan::KIND,
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// What the base holds: the kustomization's resources (wherever they are), else the YAML
/// files of the Rollout's folder.
fn base_objects(dir: &Path, root: &crate::fsio::Root) -> Result<Vec<Value>> {
    let dir_or_here = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    Ok(match crate::base::kustomization_file(dir_or_here) {
        Some(_) => crate::base::load(dir_or_here, root)?
            .objects
            .into_iter()
            .map(|o| o.value)
            .collect(),
        None => objects_in(dir_or_here, root)?,
    })
}

/// The Service the Rollout's traffic goes to, which must be in its folder.
fn service_object<'a>(app: &App<'a>, service: &str) -> Result<&'a Value> {
    find(app.all, "Service", service).ok_or_else(|| {
        refuse(
            app.file,
            format!(
                "the Rollout's traffic goes to Service {service}, which is not in {}",
                app.dir.display()
            ),
            format!(
                "put Service {service} in the Rollout's folder (the plan splits its traffic) and run init again"
            ),
        )
    })
}

/// The value of the Deployment's selector label `key`.
fn label_value<'d>(deployment: &'d Value, key: &str) -> Option<&'d str> {
    s(
        deployment,
        &format!(
            "/spec/selector/matchLabels/{}",
            key.replace('~', "~0").replace('/', "~1")
        ),
    )
}

/// The Rollout fields the plan (or the Deployment in its place) carries over as they are.
const CARRIED: [&str; 24] = [
    "/apiVersion",
    "/kind",
    "/status",
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/labels",
    "/metadata/annotations",
    "/metadata/uid",
    "/metadata/resourceVersion",
    "/metadata/generation",
    "/metadata/creationTimestamp",
    "/metadata/managedFields",
    "/metadata/selfLink",
    "/spec/replicas",
    "/spec/selector",
    "/spec/template",
    "/spec/minReadySeconds",
    "/spec/revisionHistoryLimit",
    "/spec/progressDeadlineSeconds",
    "/spec/paused",
    "/spec/workloadRef",
    "/spec/strategy/canary/steps",
    "/spec/strategy/canary/maxSurge",
    "/spec/strategy/canary/maxUnavailable",
];

/// The one Argo Rollouts Rollout of the file.
fn the_rollout<'d>(file: &Path, docs: &'d [Value]) -> Result<&'d Value> {
    let rollouts: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            s(d, "/kind") == Some("Rollout")
                && s(d, "/apiVersion").is_some_and(|a| a.starts_with("argoproj.io/"))
        })
        .collect();
    match rollouts.as_slice() {
        [one] => Ok(*one),
        [] => Err(refuse(
            file,
            "no Argo Rollouts Rollout in this file",
            "name the file that holds the `kind: Rollout`",
        )),
        many => {
            let names: Vec<&str> = many.iter().filter_map(|r| s(r, "/metadata/name")).collect();
            Err(refuse(
                file,
                format!(
                    "{} Rollouts in this file ({})",
                    many.len(),
                    names.join(", ")
                ),
                "move each Rollout to a file of its own (with its Services and routing) and run init on one",
            ))
        }
    }
}

/// The Rollout's canary strategy; blueGreen, pingPong and no strategy are refused.
fn canary_strategy<'r>(file: &Path, name: &str, rollout: &'r Value) -> Result<&'r Value> {
    // The strategy: canary only.
    if rollout.at("/spec/strategy/blueGreen").is_some() {
        return Err(refuse(
            file,
            format!(
                "Rollout {name} is blueGreen: a preview Service, then all traffic at once; a canary plan moves traffic by weight between two versions behind one Service"
            ),
            "rewrite the strategy as `canary:` with the steps you want (a one-step switch after a check: `steps: [{pause: {}}, {setWeight: 100}]`) and run init again, or keep this app on Argo Rollouts",
        ));
    }
    let Some(canary) = rollout.at("/spec/strategy/canary") else {
        return Err(refuse(
            file,
            format!("Rollout {name} has no canary strategy"),
            "a plan is a canary: give the Rollout `strategy.canary` with its steps and run init again",
        ));
    };
    if canary.get("pingPong").is_some() {
        return Err(refuse(
            file,
            format!(
                "Rollout {name} uses pingPong: two Services that take turns being stable; a canary plan keeps one Service and weights the two versions behind it"
            ),
            "remove `pingPong` and route with `canaryService`/`stableService` (or Istio subsets), then run init again",
        ));
    }
    Ok(canary)
}

/// The Deployment that replaces the Rollout in base: its workloadRef's, or one made of the
/// Rollout's metadata, with the Rollout's replicas, pod template (without a workloadRef) and
/// rolling-update limits.
fn deployment(
    app: &App<'_>,
    rollout: &Value,
    workload_ref: Option<&str>,
    ledger: &mut Ledger,
) -> Result<Value> {
    let (file, dir, canary) = (app.file, app.dir, app.canary);
    let mut deployment = match workload_ref {
        Some(d) => {
            let Some(found) = find(app.all, "Deployment", d) else {
                return Err(refuse(
                    file,
                    format!(
                        "the Rollout's workloadRef names Deployment {d}, which is not in {}",
                        dir.display()
                    ),
                    format!("put Deployment {d} in the Rollout's folder and run init again"),
                ));
            };
            let mut dep = found.clone();
            crate::rendered::strip_server_fields(&mut dep);
            dep
        }
        None => {
            let mut meta = Map::new();
            for k in ["name", "namespace", "labels", "annotations"] {
                if let Some(v) = rollout.at(&format!("/metadata/{k}")) {
                    meta.insert(k.into(), v.clone());
                }
            }
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {}})
        }
    };
    if let Some(spec) = deployment.get_mut("spec").and_then(Value::as_object_mut) {
        for k in [
            "replicas",
            "selector",
            "template",
            "minReadySeconds",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
            "paused",
        ] {
            if workload_ref.is_some() && ["selector", "template"].contains(&k) {
                continue;
            }
            if let Some(v) = rollout.at(&format!("/spec/{k}")) {
                spec.insert(k.into(), v.clone());
            }
        }
        let mut rolling = Map::new();
        for k in ["maxSurge", "maxUnavailable"] {
            if let Some(v) = canary.get(k) {
                rolling.insert(k.into(), v.clone());
            }
        }
        if !rolling.is_empty() {
            spec.insert(
                "strategy".into(),
                json!({"type": "RollingUpdate", "rollingUpdate": rolling}),
            );
            ledger.note("maxSurge/maxUnavailable: the Deployment's rolling update (how the canary's pods are replaced when its image changes)");
        }
    }
    Ok(deployment)
}

/// The plan's steps: each weight with its pause, ending at 100.
fn plan_steps(converted: &steps::Converted) -> Vec<Value> {
    let mut plan_steps: Vec<Value> = converted
        .steps
        .iter()
        .map(|st| match &st.pause {
            Some(p) => json!({"weight": st.weight, "pause": p}),
            None => json!(st.weight),
        })
        .collect();
    if converted.steps.last().is_none_or(|st| st.weight != 100) {
        plan_steps.push(json!(100));
    }

    plan_steps
}

/// The selector label the stable copy changes: `app` if the Service selects by it, else the
/// first the Service selects by, else the first.
fn selector_key(deployment: &Value, service_object: &Value) -> Option<String> {
    let sel = deployment
        .at("/spec/selector/matchLabels")
        .and_then(Value::as_object);
    let svc_sel = service_object
        .at("/spec/selector")
        .and_then(Value::as_object);
    let keys: Vec<&String> = sel.map(|m| m.keys().collect()).unwrap_or_default();
    keys.iter()
        .find(|k| k.as_str() == "app" && svc_sel.is_some_and(|s| s.contains_key(k.as_str())))
        .or_else(|| {
            keys.iter()
                .find(|k| svc_sel.is_some_and(|s| s.contains_key(k.as_str())))
        })
        .or_else(|| keys.first())
        .map(|k| k.to_string())
}

/// The VirtualServices the plan weights (`virtualService` for one) and their routes.
fn routing_fields(spec: &mut Map<String, Value>, vs_list: &[(String, Vec<String>)]) {
    match vs_list {
        [] => {}
        [(vs, _)] => {
            spec.insert("virtualService".into(), json!(vs));
        }
        many => {
            spec.insert(
                "virtualServices".into(),
                json!(many.iter().map(|(v, _)| v).collect::<Vec<_>>()),
            );
        }
    }
    let routes: Vec<&String> = vs_list.iter().flat_map(|(_, r)| r).collect();
    if !routes.is_empty() {
        spec.insert("routes".into(), json!(routes));
    }
}

/// The `stable` and `canary` versions: the image the Rollout runs, the copy's selector label
/// (`<value>-v1`), and with Istio the Rollout's subset names.
fn versions(
    image: &str,
    key: &str,
    key_value: &str,
    router: Router,
    istio: &Value,
) -> (Value, Value) {
    let mut stable =
        json!({"version": "v1", "image": image, "labels": {key: format!("{key_value}-v1")}});
    let mut canary_version = json!({"version": "v2"});
    if router == Router::Istio {
        if let (Some(sub), Some(o)) = (
            s(istio, "/destinationRule/stableSubsetName"),
            stable.as_object_mut(),
        ) {
            o.insert("subset".into(), json!(sub));
        }
        if let (Some(sub), Some(o)) = (
            s(istio, "/destinationRule/canarySubsetName"),
            canary_version.as_object_mut(),
        ) {
            o.insert("subset".into(), json!(sub));
        }
    }
    (stable, canary_version)
}

/// The base changes `init` prints: the Deployment in place of the Rollout, then each routing
/// object changed, headed by what it replaces.
fn base_changes(
    file: &Path,
    name: &str,
    workload_ref: Option<&str>,
    deployment: &Value,
    changed_objects: &[(String, Value)],
) -> String {
    let file_shown = one_line(&file.display().to_string());
    let mut base_changes = match workload_ref {
        Some(d) => format!(
            "# Delete the Rollout {} in {file_shown}; its workloadRef, Deployment {}, takes over with the Rollout's replicas:\n",
            one_line(name),
            one_line(d)
        ),
        None => format!(
            "# Replace the Rollout {} in {file_shown} with this Deployment (same name, selector and pod template; no Argo strategy):\n",
            one_line(name)
        ),
    };
    base_changes.push_str(&yaml::to_yaml(deployment));
    for (about, object) in changed_objects {
        base_changes.push_str(&format!("---\n# In place of {}:\n", one_line(about)));
        base_changes.push_str(&yaml::to_yaml(object));
    }

    base_changes
}

/// The plan file's head comment: where it comes from, what to review, and every setting
/// not carried over or carried in another form.
fn header(file: &Path, name: &str, ledger: &Ledger) -> String {
    let mut header = format!(
        "# A canary plan from the Argo Rollouts Rollout {} ({}).\n# Review every value: stable.image is the image the Rollout runs today (pin it by digest).\n# Commit the objects `init` printed in place of the ones they replace, then run\n# `canaryplan validate`.\n",
        one_line(name),
        one_line(
            &file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        )
    );
    for d in &ledger.dropped {
        header.push_str(&format!("# Not carried over: {}\n", one_line(d)));
    }
    for n in &ledger.notes {
        header.push_str(&format!("# Note: {}\n", one_line(n)));
    }
    header
}

/// `--strict`: every setting not carried over, and that nothing was written.
fn strict_refusal(file: &Path, name: &str, ledger: &Ledger) -> crate::error::Error {
    let mut e: Vec<Diagnostic> = ledger
        .dropped
        .iter()
        .map(|d| Diagnostic::new(format!("not carried over: {d}")).in_file(file))
        .collect();
    e.push(Diagnostic::new(format!("--strict: the plan cannot carry over all of Rollout {name}; nothing was written")).in_file(file).hint("change the Rollout so that each setting above has a counterpart, or run without --strict and review the notes"));
    e.into()
}
