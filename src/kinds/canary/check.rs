//! Plan → checked plan: every rule about the plan file by itself (names, versions, labels,
//! stages, weights, steps), reported all at once with positions. What comes out is plain data
//! that the later steps can trust.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_saphyr::Spanned;

use crate::error::{Diagnostic, Diagnostics, Result};
use crate::kinds::canary::plan::{self, AllowFrom, Labels, Method, Plan, Traffic};
use crate::kinds::canary::stage::{Stage, StageModel};
use crate::names;
use crate::yaml::{Kind, Node, Pos, Source};

pub use crate::yaml::At;

pub use crate::ladder::DEFAULT_STEPS;
pub use crate::plan_file::DEFAULT_OUTPUT;

#[derive(Debug)]
pub struct CheckedPlan {
    pub source: Arc<Source>,
    /// The repository root every path the plan names must stay inside.
    pub root: crate::fsio::Root,
    /// The plan file as given.
    pub path: PathBuf,
    /// The directory paths in the plan are relative to.
    pub dir: PathBuf,
    pub name: String,
    pub base: At<String>,
    pub service: At<String>,
    pub workload: At<String>,
    /// The VirtualServices named in the plan (`virtualService` or `virtualServices`); empty:
    /// every one in base that routes to the Service.
    pub virtual_services: Vec<At<String>>,
    pub routes: Option<Vec<At<String>>>,
    /// Ports whose tcp/tls routes are split; empty: every port.
    pub ports: Vec<At<u16>>,
    pub method: Method,
    /// Which API routes the traffic (`traffic:`).
    pub traffic: Traffic,
    /// Gateway API: the HTTPRoutes named in `httpRoutes` (empty: every one to the Service).
    pub http_routes: Vec<At<String>>,
    /// Gateway API: `meshRoute: generate`, where it is written.
    pub mesh_route: Option<Pos>,
    pub version_label: String,
    pub pod_labels: Labels,
    pub stable: Version,
    pub canary: Version,
    pub selector_remove: Vec<At<String>>,
    pub selector_add: Labels,
    pub selector_pos: Pos,
    pub allow_from: Vec<AllowFrom>,
    /// The trust domain of AuthorizationPolicy principals.
    pub trust_domain: String,
    pub steps: Vec<u8>,
    /// The pause written on each step, if any (same order as `steps`).
    pub step_pauses: Vec<Option<At<crate::analysis::Pause>>>,
    pub analysis: Option<crate::analysis::CheckedAnalysis>,
    pub output: PathBuf,
    pub environments: Vec<EnvironmentPlan>,
}

#[derive(Debug, Clone)]
pub struct Version {
    pub version: At<String>,
    pub image: Option<At<String>>,
    pub container: Option<At<String>>,
    /// The DestinationRule subset's name (the version's, unless the plan names one).
    pub subset: At<String>,
    /// Label overrides (stable only).
    pub labels: Labels,
    pub labels_pos: Pos,
    pub env: Labels,
}

#[derive(Debug, Clone)]
pub struct EnvironmentPlan {
    pub name: At<String>,
    pub stage: At<Stage>,
    pub weight: Option<At<u8>>,
    /// `aborted: true` (written by `abort`): weight 0, and neither test routes nor a mirror
    /// reach the canary.
    pub aborted: Option<At<bool>>,
    pub hosts: Vec<At<String>>,
    /// Test-traffic match conditions (Istio HTTPMatchRequests), the environment's or the
    /// plan's, each with where it is written.
    pub matches: Vec<At<serde_json::Value>>,
    /// Percent of the stable subset's requests mirrored to the canary (the environment's or the
    /// plan's); `None` or above 0.
    pub mirror: Option<At<f64>>,
    /// The base for this environment, as written, relative to the plan.
    pub base: At<String>,
    pub model: StageModel,
}

impl CheckedPlan {
    /// The stable copy's Deployment name.
    pub fn stable_copy_name(&self) -> String {
        format!("{}-{}", self.workload.value, self.stable.version.value)
    }

    /// What the new Deployment is, in messages and file headers.
    pub fn new_deployment_role(&self) -> &'static str {
        match self.method {
            Method::Versioned => "the canary Deployment",
            Method::Succession | Method::Coexistence => "the stable copy",
        }
    }

    /// The Deployment canaryplan adds: the stable copy, or with the versioned method the
    /// canary (see `versioned_canary_name`).
    pub fn new_deployment_name(&self) -> String {
        match self.method {
            Method::Versioned => self.versioned_canary_name(),
            Method::Succession | Method::Coexistence => self.stable_copy_name(),
        }
    }

    /// The versioned method's canary Deployment `<app>-<canary.version>`: the workload's name
    /// with its stable version suffix replaced (`reviews-v1` → `reviews-v4`).
    pub fn versioned_canary_name(&self) -> String {
        let app = self
            .workload
            .value
            .strip_suffix(&format!("-{}", self.stable.version.value))
            .unwrap_or(&self.workload.value);
        format!("{app}-{}", self.canary.version.value)
    }

    pub fn output_dir(&self, env: &str) -> PathBuf {
        self.output.join(env)
    }

    pub fn diag(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        self.source.error(pos, message)
    }

    pub fn environment(&self, name: &str) -> Option<&EnvironmentPlan> {
        self.environments.iter().find(|e| e.name.value == name)
    }
}

/// Reads and checks a plan file.
pub fn load(path: &Path) -> Result<CheckedPlan> {
    check(plan::Plan::load(path)?)
}

pub fn check(plan: Plan) -> Result<CheckedPlan> {
    let Plan { source, file, root } = plan;
    let mut d = Diagnostics::default();
    let d = &mut d;
    let source = &source;
    let spec = &file.spec;
    let err = |pos: Pos, m: String| source.error(pos, m);
    header(source, d, &file);
    let virtual_services = virtual_services(source, d, spec);
    let ports = ports(source, d, spec);
    let output = paths(source, d, spec);
    let method = method(source, d, spec);
    let (traffic, http_routes, mesh_route) = traffic_fields(source, d, spec);
    let (version_label, pod_labels) = pod_labels(source, d, spec);
    let stable = version(source, d, &spec.stable.version, "stable.version");
    let canary = version(source, d, &spec.canary.version, "canary.version");
    if stable.value == canary.value {
        d.push(
            err(
                canary.pos,
                format!("stable and canary are both version `{}`", canary.value),
            )
            .hint("give the two versions different names, e.g. `v1` and `v2`"),
        );
    }
    let stable_labels = labels(source, d, spec.stable.labels.as_ref(), "stable.labels");
    if let Some(sl) = &spec.stable.labels
        && sl.value.contains_key(&version_label)
    {
        d.push(
            err(
                Pos::of(sl),
                format!("stable.labels sets `{version_label}`, the version label"),
            )
            .hint("remove it: the copy's version label is stable.version"),
        );
    }
    let stable_env = env(source, d, spec.stable.env.as_ref(), "stable.env");
    let canary_env = env(source, d, spec.canary.env.as_ref(), "canary.env");
    method_fields(
        source,
        d,
        spec,
        method,
        stable_env.is_empty() && canary_env.is_empty(),
    );
    images(source, d, spec, method);
    let (selector_remove, selector_add, selector_pos) = selector_patch(source, d, spec);
    let allow_from = allow_from(source, d, spec);
    let (steps, step_pauses) = steps(source, d, spec.steps.as_ref());
    let analysis = spec
        .analysis
        .as_ref()
        .and_then(|a| crate::analysis::check(source, d, a));
    let (stable_subset, canary_subset) = subsets(source, d, spec, &stable, &canary);
    let trust_domain = trust_domain(source, d, spec);
    let routes = spec
        .routes
        .as_ref()
        .map(|rs| rs.iter().map(At::of).collect::<Vec<_>>());
    let environments = environments(source, d, spec, method, traffic);
    std::mem::take(d).into_result()?;

    let path = source.path.as_ref().clone();
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let output = dir.join(output);
    Ok(CheckedPlan {
        name: file.metadata.name.value.clone(),
        base: At::of(&spec.base),
        service: At::of(&spec.service),
        workload: At::of(&spec.workload),
        virtual_services,
        routes,
        ports,
        method,
        traffic,
        http_routes,
        mesh_route,
        version_label,
        pod_labels,
        stable: Version {
            version: stable,
            image: spec.stable.image.as_ref().map(At::of),
            container: spec.stable.container.as_ref().map(At::of),
            subset: stable_subset,
            labels: stable_labels,
            labels_pos: spec
                .stable
                .labels
                .as_ref()
                .map(Pos::of)
                .unwrap_or(Pos::of(&spec.stable.version)),
            env: stable_env,
        },
        canary: Version {
            version: canary,
            image: spec.canary.image.as_ref().map(At::of),
            container: None,
            subset: canary_subset,
            labels: Labels::new(),
            labels_pos: Pos::default(),
            env: canary_env,
        },
        selector_remove,
        selector_add,
        selector_pos,
        allow_from,
        trust_domain,
        steps,
        step_pauses,
        analysis,
        output,
        environments,
        path,
        dir,
        source: source.clone(),
        root,
    })
}

/// apiVersion, kind and the names the plan gives.
fn header(source: &Source, d: &mut Diagnostics, file: &plan::PlanFile) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    if file.api_version.value != plan::API_VERSION {
        d.push(
            err(
                Pos::of(&file.api_version),
                format!("unsupported apiVersion `{}`", file.api_version.value),
            )
            .hint(format!("use `apiVersion: {}`", plan::API_VERSION)),
        );
    }
    if file.kind.value != plan::KIND {
        d.push(
            err(
                Pos::of(&file.kind),
                format!("unsupported kind `{}`", file.kind.value),
            )
            .hint(format!(
                "use `kind: {}` (or `kind: LanePlan` for lanes across a call chain)",
                plan::KIND
            )),
        );
    }
    let name = &file.metadata.name;
    if !names::is_dns_label(&name.value) {
        d.push(dns_label_error(source, name, "metadata.name"));
    }
    let spec = &file.spec;
    for (field, v) in [("service", &spec.service), ("workload", &spec.workload)] {
        if !names::is_dns_label(&v.value) {
            d.push(dns_label_error(source, v, &format!("spec.{field}")));
        }
    }
}

/// The VirtualServices the plan names.
fn virtual_services(source: &Source, d: &mut Diagnostics, spec: &plan::Spec) -> Vec<At<String>> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let mut virtual_services: Vec<At<String>> = Vec::new();
    if let (Some(one), Some(many)) = (&spec.virtual_service, &spec.virtual_services) {
        d.push(
            err(
                Pos::of(many),
                "both `virtualService` and `virtualServices` are set".into(),
            )
            .hint(format!(
                "list `{}` under `virtualServices` and remove `virtualService`",
                one.value
            )),
        );
    }
    if let Some(many) = &spec.virtual_services
        && many.value.is_empty()
    {
        d.push(
            err(Pos::of(many), "`virtualServices` is empty".into())
                .hint("name the VirtualServices to patch, or remove `virtualServices` to patch every one routing to the Service"),
        );
    }
    let named = spec
        .virtual_service
        .iter()
        .chain(spec.virtual_services.iter().flat_map(|m| m.value.iter()));
    virtual_services.extend(object_names(source, d, named, "VirtualService"));
    virtual_services
}

/// The Service ports whose tcp/tls routes are split.
fn ports(source: &Source, d: &mut Diagnostics, spec: &plan::Spec) -> Vec<At<u16>> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let mut ports: Vec<At<u16>> = Vec::new();
    for node in spec.ports.iter().flat_map(|p| p.value.iter()) {
        match &node.kind {
            Kind::Number(n) if n.as_u64().is_some_and(|p| (1..=65535).contains(&p)) => {
                let port = n.as_u64().unwrap_or_default() as u16;
                if ports.iter().any(|p| p.value == port) {
                    d.push(
                        err(node.pos, format!("port {port} is listed twice"))
                            .hint("list each port once"),
                    );
                }
                ports.push(At {
                    value: port,
                    pos: node.pos,
                });
            }
            _ => d.push(
                err(node.pos, "a port is a number from 1 to 65535".into()).hint(
                    "list the Service ports whose tcp/tls routes are split, e.g. `ports: [3306]`",
                ),
            ),
        }
    }
    if let Some(p) = &spec.ports
        && p.value.is_empty()
    {
        d.push(err(Pos::of(p), "`ports` is empty".into()).hint(
            "list the ports whose tcp/tls routes are split, or remove `ports` for every port",
        ));
    }
    ports
}

/// The bases and the output directory: relative, inside the repository.
fn paths(source: &Source, d: &mut Diagnostics, spec: &plan::Spec) -> String {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let mut bases: Vec<&Spanned<String>> = vec![&spec.base];
    bases.extend(spec.environments.values().filter_map(|e| e.base.as_ref()));
    for b in bases {
        if Path::new(&b.value).is_absolute() {
            d.push(
                err(Pos::of(b), format!("the base `{}` is an absolute path", b.value))
                    .hint("write the base relative to the plan file; canaryplan reads only inside the repository"),
            );
        }
    }
    if spec.base.value.trim().is_empty() {
        d.push(
            err(Pos::of(&spec.base), "spec.base is empty".into()).hint(
                "name the file or directory holding the app's manifests, relative to the plan",
            ),
        );
    }

    let output = spec
        .output
        .as_ref()
        .map(|o| o.value.clone())
        .unwrap_or_else(|| DEFAULT_OUTPUT.to_string());
    if let Some(o) = spec
        .output
        .as_ref()
        .filter(|o| Path::new(&o.value).is_absolute())
    {
        d.push(
            err(
                Pos::of(o),
                format!("spec.output `{}` is an absolute path", o.value),
            )
            .hint("write the output directory relative to the plan file, e.g. `canary`"),
        );
    }
    if output.trim().is_empty()
        && let Some(o) = &spec.output
    {
        d.push(
            err(Pos::of(o), "spec.output is empty".into())
                .hint("name the directory the overlays are written to, e.g. `canary`"),
        );
    }

    output
}

/// The release method.
fn method(source: &Source, d: &mut Diagnostics, spec: &plan::Spec) -> Method {
    let err = |pos: Pos, m: String| source.error(pos, m);
    match &spec.method {
        None => Method::Succession,
        Some(m) => match m.value.as_str() {
            "succession" => Method::Succession,
            "coexistence" => Method::Coexistence,
            "versioned" => Method::Versioned,
            other => {
                d.push(
                    err(Pos::of(m), format!("unknown method `{other}`"))
                        .hint("use `succession` (pinned stable image), `coexistence` (one image, chosen by env) or `versioned` (one Deployment per version)"),
                );
                Method::Succession
            }
        },
    }
}

/// The version label and the pod labels both versions get.
fn pod_labels(source: &Source, d: &mut Diagnostics, spec: &plan::Spec) -> (String, Labels) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let version_label = spec
        .version_label
        .as_ref()
        .map(|v| v.value.clone())
        .unwrap_or_else(|| "version".to_string());
    if let Some(v) = &spec.version_label
        && !names::is_label_key(&v.value)
    {
        d.push(
            err(
                Pos::of(v),
                format!("`{}` is not a valid label key", v.value),
            )
            .hint("use a key such as `version` or `example.com/version`"),
        );
    }

    let pod_labels = labels(source, d, spec.pod_labels.as_ref(), "podLabels");
    if let Some(pl) = &spec.pod_labels
        && pl.value.contains_key(&version_label)
    {
        d.push(
            err(
                Pos::of(pl),
                format!("podLabels sets `{version_label}`, the version label"),
            )
            .hint("remove it: canaryplan sets the version label to each version's name"),
        );
    }

    (version_label, pod_labels)
}

/// The fields each method needs, and those it has no use for.
fn method_fields(
    source: &Source,
    d: &mut Diagnostics,
    spec: &plan::Spec,
    method: Method,
    envs_empty: bool,
) {
    match method {
        Method::Succession => succession_fields(source, d, spec),
        Method::Versioned => versioned_fields(source, d, spec),
        Method::Coexistence => coexistence_fields(source, d, spec, envs_empty),
    }
}

fn succession_fields(source: &Source, d: &mut Diagnostics, spec: &plan::Spec) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    if spec.stable.image.is_none() {
        d.push(
            err(
                Pos::of(&spec.stable.version),
                "the succession method needs stable.image, the image the stable copy keeps running"
                    .into(),
            )
            .hint("add `image: <the image stable runs today>` under stable, pinned by digest"),
        );
    }
    for (e, field) in [
        (&spec.stable.env, "stable.env"),
        (&spec.canary.env, "canary.env"),
    ] {
        if let Some(e) = e
            && !e.value.is_empty()
        {
            d.push(
                err(Pos::of(e), format!("{field} is for the coexistence method"))
                    .hint("remove it, or set `method: coexistence`"),
            );
        }
    }
}

fn versioned_fields(source: &Source, d: &mut Diagnostics, spec: &plan::Spec) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    if spec.canary.image.is_none() {
        d.push(
            err(
                Pos::of(&spec.canary.version),
                "the versioned method needs canary.image, the image of the new canary Deployment"
                    .into(),
            )
            .hint("add `image: <the new version's image>` under canary, pinned by digest"),
        );
    }
    let unused: [(Option<Pos>, &str, &str); 6] = [
        (
            spec.stable.image.as_ref().map(Pos::of),
            "stable.image",
            "the stable Deployment keeps running as it is in base",
        ),
        (
            spec.stable.labels.as_ref().map(Pos::of),
            "stable.labels",
            "the stable Deployment is not copied, so there is no selector to make disjoint",
        ),
        (
            spec.pod_labels.as_ref().map(Pos::of),
            "podLabels",
            "the Service already selects the pods of every version",
        ),
        (
            spec.selector.as_ref().and_then(|s| {
                s.add
                    .as_ref()
                    .map(Pos::of)
                    .or_else(|| s.remove.first().map(Pos::of))
            }),
            "selector",
            "the Service already selects the pods of every version; no selector patch is needed",
        ),
        (
            spec.stable.env.as_ref().map(Pos::of),
            "stable.env",
            "environment variables choose the version only with the coexistence method",
        ),
        (
            spec.canary.env.as_ref().map(Pos::of),
            "canary.env",
            "environment variables choose the version only with the coexistence method",
        ),
    ];
    for (pos, field, why) in unused {
        if let Some(pos) = pos {
            d.push(
                err(
                    pos,
                    format!("{field} has no meaning with the versioned method"),
                )
                .hint(format!("remove it: {why}")),
            );
        }
    }
}

fn coexistence_fields(source: &Source, d: &mut Diagnostics, spec: &plan::Spec, envs_empty: bool) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    if let Some(img) = &spec.stable.image {
        d.push(err(Pos::of(img), "stable.image is for the succession method: with coexistence both Deployments run the same image".into()).hint("remove it, or set `method: succession`"));
    }
    if envs_empty {
        d.push(
            err(Pos::of(&spec.stable.version), "the coexistence method needs stable.env or canary.env to tell the versions apart".into())
                .hint("add e.g. `env: {IMPLEMENTATION: v1}` under stable and `env: {IMPLEMENTATION: v2}` under canary"),
        );
    }
}

/// Images: each for its method, each a reference.
fn images(source: &Source, d: &mut Diagnostics, spec: &plan::Spec, method: Method) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    if let Some(img) = &spec.canary.image
        && method != Method::Versioned
    {
        d.push(
            err(Pos::of(img), "canary.image is for the versioned method".into()).hint(
                "with succession and coexistence the canary is the base's Deployment: put the new image in the base",
            ),
        );
    }
    for img in [&spec.stable.image, &spec.canary.image]
        .into_iter()
        .flatten()
    {
        if !(img.value.trim().is_empty() || img.value.chars().any(char::is_whitespace)) {
            continue;
        }
        d.push(
            err(
                Pos::of(img),
                format!("`{}` is not an image reference", img.value),
            )
            .hint("use e.g. `registry.example/app@sha256:<digest>`"),
        );
    }
}

/// The Service selector patch: `(remove, add, where)`.
fn selector_patch(
    source: &Source,
    d: &mut Diagnostics,
    spec: &plan::Spec,
) -> (Vec<At<String>>, Labels, Pos) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    match &spec.selector {
        Some(s) => {
            let add = labels(source, d, s.add.as_ref(), "selector.add");
            let remove: Vec<At<String>> = s.remove.iter().map(At::of).collect();
            for r in &remove {
                if add.contains_key(&r.value) {
                    d.push(
                        err(
                            r.pos,
                            format!("selector key `{}` is both removed and added", r.value),
                        )
                        .hint("list it under only one of `remove` and `add`"),
                    );
                }
            }
            let pos = s
                .add
                .as_ref()
                .map(Pos::of)
                .or_else(|| s.remove.first().map(Pos::of))
                .unwrap_or_default();
            (remove, add, pos)
        }
        None => (Vec::new(), Labels::new(), Pos::default()),
    }
}

/// Who may reach the stable copy.
fn allow_from(source: &Source, d: &mut Diagnostics, spec: &plan::Spec) -> Vec<AllowFrom> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let mut allow_from = Vec::new();
    for a in spec.allow_from.iter().flatten() {
        for (v, what) in [
            (&a.value.namespace, "namespace"),
            (&a.value.service_account, "serviceAccount"),
        ] {
            if !names::is_dns_subdomain(v) {
                d.push(
                    err(
                        Pos::of(a),
                        format!("allowFrom {what} `{v}` is not a valid name"),
                    )
                    .hint("use the namespace and service account names as Kubernetes shows them"),
                );
            }
        }
        allow_from.push(a.value.clone());
    }

    allow_from
}

/// The subsets of the two versions: their own names, or those the base's routes use.
fn subsets(
    source: &Source,
    d: &mut Diagnostics,
    spec: &plan::Spec,
    stable: &At<String>,
    canary: &At<String>,
) -> (At<String>, At<String>) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let subset = |s: &Option<Spanned<String>>, v: &At<String>, field: &str, d: &mut Diagnostics| {
        let Some(s) = s else { return v.clone() };
        if !names::is_dns_label(&s.value) {
            d.push(
                err(
                    Pos::of(s),
                    format!("{field} `{}` is not a valid subset name", s.value),
                )
                .hint("Istio subset names are DNS-1123 labels: lower-case letters, digits and `-`"),
            );
        }
        At::of(s)
    };
    let stable_subset = subset(&spec.stable.subset, stable, "stable.subset", d);
    let canary_subset = subset(&spec.canary.subset, canary, "canary.subset", d);
    if stable_subset.value == canary_subset.value && stable.value != canary.value {
        d.push(
            err(
                canary_subset.pos,
                format!(
                    "stable and canary both use subset `{}`",
                    canary_subset.value
                ),
            )
            .hint("each version needs a subset of its own"),
        );
    }

    (stable_subset, canary_subset)
}

/// The mesh's trust domain (`cluster.local` unless the plan says).
fn trust_domain(source: &Source, d: &mut Diagnostics, spec: &plan::Spec) -> String {
    let err = |pos: Pos, m: String| source.error(pos, m);
    match &spec.trust_domain {
        None => "cluster.local".to_string(),
        Some(td) => {
            if !names::is_dns_subdomain(&td.value) {
                d.push(
                    err(Pos::of(td), format!("trustDomain `{}` is not a valid trust domain", td.value))
                        .hint("use the mesh's trust domain as `istioctl` or meshConfig.trustDomain shows it, e.g. `cluster.local`"),
                );
            }
            td.value.clone()
        }
    }
}

/// Each environment: its stage, weight, base, matches and mirror.
fn environments(
    source: &Source,
    d: &mut Diagnostics,
    spec: &plan::Spec,
    method: Method,
    traffic: Traffic,
) -> Vec<EnvironmentPlan> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let mut environments = Vec::new();
    if spec.environments.is_empty() {
        d.push(
            err(Pos::default(), "the plan has no environments".into())
                .hint("add `environments: {staging: {stage: prepare}}` under spec"),
        );
    }
    for (env_name, e) in &spec.environments {
        if let Some(mut env) = environment(source, d, env_name, e, &spec.base, method) {
            let written = e.match_.as_ref().or(spec.match_.as_ref());
            env.matches = written
                .map(|m| match_requests(source, d, m, traffic))
                .unwrap_or_default();
            env.mirror = e
                .mirror
                .as_ref()
                .or(spec.mirror.as_ref())
                .and_then(|m| mirror_percent(source, d, m))
                .filter(|m| m.value > 0.0);
            if let (Some(m), Some(w)) = (&env.mirror, &env.weight)
                && w.value == 100
            {
                d.push(
                    err(m.pos, format!("environment `{}` mirrors {}% to the canary at weight 100", env.name.value, m.value))
                        .hint(format!("at weight 100 every request already reaches the canary, so it would mirror to itself: set `mirror: 0` on environment `{}` (an environment's mirror replaces the plan's)", env.name.value)),
                );
            }
            environments.push(env);
        }
    }

    environments
}

fn dns_label_error(source: &Source, v: &Spanned<String>, field: &str) -> Diagnostic {
    source
        .error(Pos::of(v), format!("{field} `{}` is not a DNS-1123 label", v.value))
        .hint("use at most 63 lower-case letters, digits and `-`, starting and ending with a letter or digit")
}

fn version(source: &Source, d: &mut Diagnostics, v: &Spanned<String>, field: &str) -> At<String> {
    if !names::is_dns_label(&v.value) {
        d.push(
            source
                .error(
                    Pos::of(v),
                    format!("{field} `{}` is not a valid version name", v.value),
                )
                .hint(
                    "a version becomes a label value and part of a Deployment name: use e.g. `v1`",
                ),
        );
    }
    At::of(v)
}

fn labels(
    source: &Source,
    d: &mut Diagnostics,
    l: Option<&Spanned<Labels>>,
    field: &str,
) -> Labels {
    let Some(l) = l else { return Labels::new() };
    for (k, v) in &l.value {
        if !names::is_label_key(k) {
            d.push(source.error(Pos::of(l), format!("{field}: `{k}` is not a valid label key")).hint("a label key is an optional DNS prefix and `/`, then up to 63 of letters, digits, `-`, `_`, `.`"));
        }
        if !names::is_label_value(v) {
            d.push(source.error(Pos::of(l), format!("{field}: `{v}` (for `{k}`) is not a valid label value")).hint("a label value is up to 63 of letters, digits, `-`, `_`, `.`, starting and ending alphanumeric"));
        }
    }
    l.value.clone()
}

fn env(source: &Source, d: &mut Diagnostics, e: Option<&Spanned<Labels>>, field: &str) -> Labels {
    let Some(e) = e else { return Labels::new() };
    for k in e.value.keys() {
        let ok = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !k.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            d.push(
                source
                    .error(
                        Pos::of(e),
                        format!("{field}: `{k}` is not a valid environment variable name"),
                    )
                    .hint("use letters, digits and `_`, not starting with a digit"),
            );
        }
    }
    e.value.clone()
}

/// An integer 0..=100 from a plan node.
fn percent(source: &Source, node: &Node, what: &str) -> Result<u8, Diagnostic> {
    let n = match &node.kind {
        Kind::Number(n) => n.as_u64().filter(|v| *v <= 100),
        _ => None,
    };
    n.map(|v| v as u8).ok_or_else(|| {
        let shown = match &node.kind {
            Kind::String(s) => format!("`{s}`"),
            Kind::Number(n) => n.to_string(),
            Kind::Bool(b) => b.to_string(),
            Kind::Null => "nothing".to_string(),
            Kind::Seq(_) | Kind::Map(_) => "a collection".to_string(),
        };
        source
            .error(
                node.pos,
                format!("{what} is {shown}, expected an integer from 0 to 100"),
            )
            .hint(format!(
                "write the percentage of traffic as a whole number, e.g. `{what}: 5`"
            ))
    })
}

type Pauses = Vec<Option<At<crate::analysis::Pause>>>;

fn steps(
    source: &Source,
    d: &mut Diagnostics,
    steps: Option<&Spanned<Vec<Node>>>,
) -> (Vec<u8>, Pauses) {
    let Some(steps) = steps else {
        return (DEFAULT_STEPS.to_vec(), vec![None; DEFAULT_STEPS.len()]);
    };
    let mut out: Vec<u8> = Vec::new();
    let mut pauses = Vec::new();
    for entry in &steps.value {
        // `{weight: N, pause: P}`: the weight is read as a bare entry would be.
        let node = match &entry.kind {
            Kind::Map(fields) => {
                for (k, _) in fields {
                    if k.value != "weight" && k.value != "pause" {
                        d.push(
                            source
                                .error(
                                    Pos::of(k),
                                    format!("`{}` is not a field of a step", k.value),
                                )
                                .hint("a step is a weight, or `{weight: N, pause: 20s}`"),
                        );
                    }
                }
                match fields.iter().find(|(k, _)| k.value == "weight") {
                    Some((_, w)) => w,
                    None => {
                        d.push(
                            source
                                .error(entry.pos, "this step has no weight")
                                .hint("write `{weight: N, pause: 20s}`"),
                        );
                        continue;
                    }
                }
            }
            _ => entry,
        };
        pauses.push(crate::analysis::pause_of(source, d, entry));
        match percent(source, node, "a step") {
            Ok(v) => {
                // A first step of 0 holds the canary without traffic (Argo's `setWeight: 0`,
                // or a pause before the first weight): a step only with its pause.
                if v == 0 && !out.is_empty() || out.last().is_some_and(|last| *last >= v) {
                    d.push(source.error(node.pos, format!("step {v} does not go up from the step before it")).hint("list steps in increasing order, each from 1 to 100, e.g. `[1, 5, 25, 50, 100]`"));
                }
                out.push(v);
            }
            Err(e) => d.push(e),
        }
    }
    if out.last() != Some(&100) {
        d.push(
            source
                .error(Pos::of(steps), "steps must end at 100".to_string())
                .hint("add 100 as the last step: it is the weight cleanup-1 requires"),
        );
    }
    (out, pauses)
}

fn environment(
    source: &Source,
    d: &mut Diagnostics,
    name: &Spanned<String>,
    e: &plan::Environment,
    base: &Spanned<String>,
    method: Method,
) -> Option<EnvironmentPlan> {
    let mut ok = true;
    if !names::is_dns_label(&name.value) {
        ok = false;
        d.push(
            source
                .error(Pos::of(name), format!("environment name `{}` is not a DNS-1123 label", name.value))
                .hint("an environment becomes a directory name: use lower-case letters, digits and `-`, e.g. `staging`"),
        );
    }
    let stage = match Stage::parse(&e.stage.value) {
        Some(s) => s,
        None => {
            let names = Stage::ALL.map(Stage::name);
            let hint = match names::did_you_mean(&e.stage.value, names) {
                Some(s) => format!("did you mean `{s}`? stages are {}", names.join(", ")),
                None => format!("stages are {}", names.join(", ")),
            };
            d.push(
                source
                    .error(
                        Pos::of(&e.stage),
                        format!("unknown stage `{}`", e.stage.value),
                    )
                    .hint(hint),
            );
            return None;
        }
    };
    let weight = match &e.weight {
        None => None,
        Some(node) => match percent(source, node, "weight") {
            Ok(v) => Some(At {
                value: v,
                pos: node.pos,
            }),
            Err(err) => {
                d.push(err);
                return None;
            }
        },
    };
    match (stage, &weight) {
        (Stage::Shift, None) => {
            ok = false;
            d.push(source.error(Pos::of(&e.stage), format!("environment `{}` is at stage shift but has no weight", name.value)).hint("add `weight: 0` (all traffic on the stable copy) and raise it step by step"));
        }
        (Stage::Prepare | Stage::Route, Some(w)) => {
            ok = false;
            d.push(
                source
                    .error(w.pos, format!("weight {} has no effect at stage {stage}", w.value))
                    .hint(if stage == Stage::Route {
                        "at route all traffic goes to the canary subset, which still runs the old code; remove the weight, or set `stage: shift`"
                    } else {
                        "routing is untouched at prepare; remove the weight"
                    }),
            );
        }
        (Stage::Cleanup1 | Stage::Cleanup2 | Stage::Cleanup3 | Stage::Done, Some(w))
            if w.value != 100 =>
        {
            ok = false;
            d.push(
                source
                    .error(w.pos, format!("stage {stage} needs weight 100, but the weight is {}", w.value))
                    .hint("cleanup starts only after all traffic is on the canary: set `stage: shift` and promote to 100 first"),
            );
        }
        _ => {}
    }
    let aborted = e.aborted.as_ref().filter(|a| a.value).map(At::of);
    if let Some(a) = &aborted
        && (stage != Stage::Shift || weight.as_ref().is_some_and(|w| w.value != 0))
    {
        ok = false;
        d.push(
            source
                .error(a.pos, format!("`aborted: true` goes with stage shift and weight 0, and environment `{}` is at {stage}{}", name.value, weight.as_ref().map(|w| format!(", weight {}", w.value)).unwrap_or_default()))
                .hint("`canaryplan abort` writes it with weight 0; `canaryplan promote` removes it: remove the line, or set the weight back to 0"),
        );
    }
    let mut hosts = Vec::new();
    for h in e.hosts.iter().flatten() {
        if !names::is_host(&h.value) {
            ok = false;
            d.push(
                source
                    .error(Pos::of(h), format!("`{}` is not a valid host", h.value))
                    .hint("use a DNS name such as `app.example.com` or `*.example.com`"),
            );
        }
        hosts.push(At::of(h));
    }
    let env_base = e.base.as_ref().map(At::of).unwrap_or_else(|| At::of(base));
    ok.then(|| EnvironmentPlan {
        name: At::of(name),
        stage: At {
            value: stage,
            pos: Pos::of(&e.stage),
        },
        model: StageModel::new(method, stage, weight.as_ref().map(|w| w.value)),
        weight,
        aborted,
        hosts,
        matches: Vec::new(),
        mirror: None,
        base: env_base,
    })
}

/// `mirror:`: a percent from 0 to 100, decimals allowed (Istio's `mirrorPercentage`).
fn mirror_percent(source: &Source, d: &mut Diagnostics, node: &Node) -> Option<At<f64>> {
    match &node.kind {
        Kind::Number(n) if n.as_f64().is_some_and(|v| (0.0..=100.0).contains(&v)) => Some(At {
            value: n.as_f64().unwrap_or_default(),
            pos: node.pos,
        }),
        _ => {
            d.push(
                source
                    .error(node.pos, "mirror is a percent from 0 to 100".to_string())
                    .hint("write the share of requests copied to the canary, e.g. `mirror: 10` or `mirror: 0.5`"),
            );
            None
        }
    }
}

pub use crate::plan_file::{HTTP_MATCH_FIELDS, HTTP_ROUTE_MATCH_FIELDS};

/// `match:` entries: each a mapping of HTTPMatchRequest fields (Istio) or HTTPRouteMatch
/// fields (Gateway API).
fn match_requests(
    source: &Source,
    d: &mut Diagnostics,
    m: &Spanned<Vec<Node>>,
    traffic: Traffic,
) -> Vec<At<serde_json::Value>> {
    if m.value.is_empty() {
        d.push(
            source
                .error(Pos::of(m), "`match` is empty".to_string())
                .hint("list the requests that go to the canary, e.g. `- headers: {x-canary: {exact: \"true\"}}`, or remove `match`"),
        );
    }
    let api = match traffic {
        Traffic::Istio => MatchApi {
            fields: &HTTP_MATCH_FIELDS,
            shape: "Istio HTTPMatchRequest fields",
            example: "e.g. `- headers: {end-user: {exact: jason}}`",
            empty: "name the headers, cookie or source labels of the test traffic",
            not_a_field: "an Istio match request",
            has: "Istio's HTTPMatchRequest",
        },
        Traffic::GatewayApi => MatchApi {
            fields: &HTTP_ROUTE_MATCH_FIELDS,
            shape: "Gateway API HTTPRouteMatch fields",
            example: "e.g. `- headers: [{name: x-canary, value: \"true\"}]`",
            empty: "name the headers or query parameters of the test traffic",
            not_a_field: "a Gateway API HTTPRouteMatch",
            has: "Gateway API's HTTPRouteMatch",
        },
    };
    let mut out = Vec::new();
    for node in &m.value {
        let Kind::Map(entries) = &node.kind else {
            d.push(
                source
                    .error(
                        node.pos,
                        format!("a `match` entry must be a mapping of {}", api.shape),
                    )
                    .hint(api.example),
            );
            continue;
        };
        if entries.is_empty() {
            d.push(
                source
                    .error(
                        node.pos,
                        "an empty `match` entry would send every request to the canary".to_string(),
                    )
                    .hint(api.empty),
            );
        }
        for (k, v) in entries {
            if !api.fields.contains(&k.value.as_str()) {
                let fields = api.fields.join(", ");
                let hint = match names::did_you_mean(&k.value, api.fields.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? {} has {fields}", api.has),
                    None => format!("{} has {fields}", api.has),
                };
                d.push(
                    source
                        .error(
                            Pos::of(k),
                            format!("`{}` is not a field of {}", k.value, api.not_a_field),
                        )
                        .hint(hint),
                );
            } else if traffic == Traffic::GatewayApi
                && matches!(k.value.as_str(), "headers" | "queryParams")
                && !is_name_value_list(v)
            {
                d.push(
                    source
                        .error(v.pos, format!("`{}` is a list of `{{name, value}}` entries in Gateway API", k.value))
                        .hint(format!("write e.g. `{}: [{{name: x-canary, value: \"true\"}}]` (add `type: RegularExpression` for a regex); Istio's map form does not apply with `traffic: gateway-api`", k.value)),
                );
            }
        }
        out.push(At {
            value: node.to_json(),
            pos: node.pos,
        });
    }
    out
}

/// How `match:` entries look for one routing API, in error messages.
struct MatchApi {
    fields: &'static [&'static str],
    shape: &'static str,
    example: &'static str,
    empty: &'static str,
    not_a_field: &'static str,
    has: &'static str,
}

/// A Gateway API header or query parameter match list: `[{name, value, type?}]`.
fn is_name_value_list(v: &Node) -> bool {
    let Kind::Seq(items) = &v.kind else {
        return false;
    };
    items.iter().all(|i| match &i.kind {
        Kind::Map(e) => {
            let has = |f: &str| {
                e.iter()
                    .any(|(n, v)| n.value == f && matches!(v.kind, Kind::String(_)))
            };
            has("name") && has("value")
        }
        _ => false,
    })
}

/// Names of `kind` objects listed in the plan: valid object names, each once.
fn object_names<'s>(
    source: &Source,
    d: &mut Diagnostics,
    listed: impl Iterator<Item = &'s Spanned<String>>,
    kind: &str,
) -> Vec<At<String>> {
    let mut out: Vec<At<String>> = Vec::new();
    for n in listed {
        if !names::is_dns_subdomain(&n.value) {
            d.push(
                source
                    .error(
                        Pos::of(n),
                        format!("`{}` is not a valid object name", n.value),
                    )
                    .hint(format!(
                        "a {kind} name is lower-case letters, digits, `-` and `.`"
                    )),
            );
        } else if out.iter().any(|v| v.value == n.value) {
            d.push(
                source
                    .error(Pos::of(n), format!("{kind} `{}` is listed twice", n.value))
                    .hint(format!("list each {kind} once")),
            );
        }
        out.push(At::of(n));
    }
    out
}

/// `traffic:`, and the fields that belong to one routing API only: each is a located error
/// under the other.
fn traffic_fields(
    source: &Source,
    d: &mut Diagnostics,
    spec: &plan::Spec,
) -> (Traffic, Vec<At<String>>, Option<Pos>) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let traffic = match &spec.traffic {
        None => Traffic::Istio,
        Some(t) => match t.value.as_str() {
            "istio" => Traffic::Istio,
            "gateway-api" => Traffic::GatewayApi,
            other => {
                d.push(
                    err(Pos::of(t), format!("unknown traffic API `{other}`")).hint(
                        "use `istio` (DestinationRule subsets, VirtualService weights) or `gateway-api` (HTTPRoute backendRef weights)",
                    ),
                );
                Traffic::Istio
            }
        },
    };
    let mut http_routes: Vec<At<String>> = Vec::new();
    if let Some(list) = &spec.http_routes {
        if list.value.is_empty() {
            d.push(err(Pos::of(list), "`httpRoutes` is empty".into()).hint(
                "name the HTTPRoutes to patch, or remove `httpRoutes` to patch every one with a backendRef to the Service",
            ));
        }
        http_routes = object_names(source, d, list.value.iter(), "HTTPRoute");
    }
    let mesh_route = spec.mesh_route.as_ref().map(|m| {
        if m.value != "generate" {
            d.push(
                err(Pos::of(m), format!("unknown meshRoute `{}`", m.value)).hint(
                    "write `meshRoute: generate` for a GAMMA HTTPRoute that weights mesh callers too, or remove it",
                ),
            );
        }
        Pos::of(m)
    });
    let first = |l: &Option<Vec<Spanned<String>>>| l.as_ref().and_then(|v| v.first()).map(Pos::of);
    match traffic {
        Traffic::GatewayApi => {
            let istio_only: [(Option<Pos>, &str, &str); 7] = [
                (
                    spec.virtual_service.as_ref().map(Pos::of),
                    "virtualService",
                    "name HTTPRoutes with `httpRoutes:`",
                ),
                (
                    spec.virtual_services.as_ref().map(Pos::of),
                    "virtualServices",
                    "name HTTPRoutes with `httpRoutes:`",
                ),
                (
                    first(&spec.routes),
                    "routes",
                    "canaryplan splits every rule of the selected HTTPRoutes that sends to the Service; choose HTTPRoutes with `httpRoutes:`",
                ),
                (
                    spec.ports.as_ref().map(Pos::of),
                    "ports",
                    "Gateway API tcp/tls routes are not weighted by canaryplan; HTTPRoutes keep each backendRef's port",
                ),
                (
                    spec.stable
                        .subset
                        .as_ref()
                        .or(spec.canary.subset.as_ref())
                        .map(Pos::of),
                    "subset",
                    "versions are reached through the Services `<service>-<version>` canaryplan renders, not subsets",
                ),
                (
                    spec.selector.as_ref().and_then(|s| {
                        s.add
                            .as_ref()
                            .map(Pos::of)
                            .or_else(|| s.remove.first().map(Pos::of))
                    }),
                    "selector",
                    "routes name the per-version Services, so the Service keeps its base selector",
                ),
                (
                    spec.environments.values().find_map(|e| first(&e.hosts)),
                    "hosts",
                    "set `hostnames` on the HTTPRoute in this environment's base",
                ),
            ];
            for (pos, field, why) in istio_only
                .into_iter()
                .filter_map(|(p, f, w)| Some((p?, f, w)))
            {
                d.push(
                    err(pos, format!("`{field}` is an Istio field, and this plan routes with `traffic: gateway-api`"))
                        .hint(format!("remove it: {why}")),
                );
            }
        }
        Traffic::Istio => {
            for (pos, field) in [
                (spec.http_routes.as_ref().map(Pos::of), "httpRoutes"),
                (mesh_route, "meshRoute"),
            ] {
                if let Some(pos) = pos {
                    d.push(
                        err(
                            pos,
                            format!(
                                "`{field}` is a Gateway API field, and this plan routes with Istio"
                            ),
                        )
                        .hint("set `traffic: gateway-api` to weight HTTPRoutes, or remove it"),
                    );
                }
            }
        }
    }
    (traffic, http_routes, mesh_route)
}
