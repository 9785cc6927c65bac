//! The LanePlan file (`kind: LanePlan`) as users write it, and its checks: a call chain of
//! Services, lanes that run new versions of some of them, chosen by a request header, falling
//! back to the baseline for the services a lane does not have.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Diagnostic, Diagnostics, Result};
use crate::ladder::Stage;
use crate::names;
use crate::plan_file::Labels;
use crate::yaml::At;

use super::stage::LaneModel;
use crate::yaml::{self, Kind, Node, Pos, Source};

pub const KIND: &str = "LanePlan";

/// An end-to-end canary across a call chain: requests whose header names a lane are served by
/// that lane's version of each service that has one, and by the baseline everywhere else.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "LanePlan")]
pub struct LanePlanFile {
    /// Always `canaryplan.io/v1alpha1`.
    #[schemars(with = "String", extend("const" = "canaryplan.io/v1alpha1"))]
    pub api_version: Spanned<String>,
    /// Always `LanePlan`.
    #[schemars(with = "String", extend("const" = "LanePlan"))]
    pub kind: Spanned<String>,
    pub metadata: crate::plan_file::Metadata,
    pub spec: LaneSpec,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LaneSpec {
    /// The request header that names a lane; every service must propagate it. Lower case:
    /// Istio matches header names in lower case.
    #[schemars(with = "String")]
    pub header: Spanned<String>,
    /// The header every service passes on along the call chain (ASM's end-to-end pass-through
    /// header, e.g. `my-request-id`); default: `header` itself.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub trace_header: Option<Spanned<String>>,
    /// The pod label telemetry and version subsets read (default `version`): a lane copy
    /// carries its lane's `version` in it, never the baseline's.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub version_label: Option<Spanned<String>>,
    /// The pod label that tells lanes apart (its value is the lane's name).
    #[schemars(with = "String")]
    pub label: Spanned<String>,
    /// The baseline lane's name: the pods of base, and where requests fall back.
    #[schemars(with = "String")]
    pub baseline: Spanned<String>,
    /// The call chain, in call order: each a Service and its Deployment in a base.
    #[schemars(with = "Vec<ChainService>")]
    pub services: Spanned<Vec<ChainService>>,
    /// Where outside traffic enters the chain.
    #[serde(default)]
    pub ingress: Option<Ingress>,
    /// The lanes beside the baseline, each with the services it runs a version of.
    #[schemars(with = "IndexMap<String, Lane>")]
    pub lanes: IndexMap<Spanned<String>, Lane>,
    /// Overlays are written to `<output>/<environment>/` (relative to the plan; default `canary`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub output: Option<Spanned<String>>,
    /// Per environment: the stage, and per lane its share of the ingress traffic.
    #[schemars(with = "IndexMap<String, LaneEnvironment>")]
    pub environments: IndexMap<Spanned<String>, LaneEnvironment>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainService {
    /// The Service.
    #[schemars(with = "String")]
    pub service: Spanned<String>,
    /// The Deployment it selects (the baseline).
    #[schemars(with = "String")]
    pub workload: Spanned<String>,
    /// The file or directory (relative to the plan) holding its manifests.
    #[schemars(with = "String")]
    pub base: Spanned<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    /// The Istio Gateway, `namespace/name`.
    #[schemars(with = "String")]
    pub gateway: Spanned<String>,
    /// Hosts served through it.
    #[schemars(with = "Vec<String>")]
    pub hosts: Spanned<Vec<Spanned<String>>>,
    /// Istio HTTPMatchRequests that select the chain's traffic (e.g. a uri).
    #[serde(default, rename = "match")]
    #[schemars(with = "Option<Vec<serde_json::Map<String, serde_json::Value>>>")]
    pub match_: Option<Spanned<Vec<Node>>>,
    /// The entry service (one of `services`).
    #[schemars(with = "String")]
    pub service: Spanned<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lane {
    /// The value of `versionLabel` on this lane's copies (default: the lane's name).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub version: Option<Spanned<String>>,
    /// The services this lane runs a version of, and what it is.
    #[schemars(with = "IndexMap<String, LaneService>")]
    pub services: Spanned<IndexMap<Spanned<String>, LaneService>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaneService {
    /// The image of the lane's copy (its main container: the first one).
    #[schemars(with = "String")]
    pub image: Spanned<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaneEnvironment {
    /// The stage to render.
    #[schemars(with = "crate::ladder::Stage")]
    pub stage: Spanned<String>,
    /// Per lane: its share of the ingress traffic without the header, and how it ends.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, LaneSetting>>")]
    pub lanes: Option<IndexMap<Spanned<String>, LaneSetting>>,
    /// Written by `canaryplan abort` (every lane's weight to 0): no request reaches a lane
    /// copy, tagged or not. `promote --lane` removes it.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub aborted: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaneSetting {
    /// Percent of ingress requests without the header sent into this lane at `shift`.
    #[serde(default)]
    #[schemars(with = "Option<u8>", range(max = 100))]
    pub weight: Option<Node>,
    /// `remove` (default): the lane goes at cleanup, with weight 0 first. `promote`: its
    /// versions become the baseline's (in base) before the lane goes.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub end: Option<Spanned<String>>,
    /// Services of this lane promoted one by one (Kruise's `rollout approve`): base runs the
    /// lane's image for them, so the lane's requests go to their baseline; their copies idle
    /// until cleanup.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub promoted: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One service of the chain, checked.
#[derive(Debug, Clone)]
pub struct Member {
    pub service: At<String>,
    pub workload: At<String>,
    pub base: At<String>,
}

/// A lane, checked: its name (the label value) and its services' images, in chain order.
#[derive(Debug, Clone)]
pub struct CheckedLane {
    pub name: At<String>,
    /// The value of the version label on the lane's copies.
    pub version: String,
    pub images: Vec<(String, At<String>)>,
}

impl CheckedLane {
    pub fn image_of(&self, service: &str) -> Option<&At<String>> {
        self.images
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, i)| i)
    }
}

/// How a lane ends at cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Remove,
    Promote,
}

#[derive(Debug, Clone)]
pub struct LaneEnv {
    pub name: At<String>,
    pub stage: At<Stage>,
    pub model: LaneModel,
    /// Per lane (in plan order): its ingress weight and how it ends.
    pub lanes: Vec<(String, Option<At<u8>>, End)>,
    /// Where the environment's name, and each lane's setting, are in the file (for edits).
    pub lane_keys: Vec<(String, Pos)>,
    /// Per lane: the services promoted one by one in this environment, and where the list is.
    pub promoted: Vec<Promoted>,
    /// `aborted: true`: no request reaches a lane copy.
    pub aborted: Option<At<bool>>,
}

/// The services of a lane promoted one by one in an environment (`promoted:`).
#[derive(Debug, Clone)]
pub struct Promoted {
    pub lane: String,
    /// The list itself, and each service named in it.
    pub pos: Pos,
    pub services: Vec<At<String>>,
}

impl LaneEnv {
    /// Whether requests naming a lane reach its copies: at `route` and `shift`, unless the
    /// environment is aborted (then no request reaches a copy, tagged or not).
    pub fn lanes_open(&self) -> bool {
        self.model.lane_routes && self.aborted.is_none()
    }

    /// Whether `service` of `lane` is promoted here: the lane's requests go to its baseline.
    pub fn promoted(&self, lane: &str, service: &str) -> bool {
        self.promoted
            .iter()
            .any(|p| p.lane == lane && p.services.iter().any(|s| s.value == service))
    }

    pub fn weight(&self, lane: &str) -> u8 {
        self.lanes
            .iter()
            .find(|(l, _, _)| l == lane)
            .and_then(|(_, w, _)| w.as_ref().map(|w| w.value))
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct CheckedIngress {
    pub gateway: At<String>,
    pub hosts: Vec<String>,
    pub matches: Vec<serde_json::Value>,
    pub service: At<String>,
}

#[derive(Debug)]
pub struct CheckedLanePlan {
    pub source: Arc<Source>,
    pub root: crate::fsio::Root,
    pub path: PathBuf,
    pub dir: PathBuf,
    pub name: String,
    pub header: At<String>,
    /// The end-to-end pass-through header (`traceHeader`, else `header`).
    pub trace_header: String,
    pub label: At<String>,
    pub version_label: String,
    pub baseline: At<String>,
    pub services: Vec<Member>,
    pub ingress: Option<CheckedIngress>,
    pub lanes: Vec<CheckedLane>,
    pub output: PathBuf,
    pub environments: Vec<LaneEnv>,
}

impl CheckedLanePlan {
    pub fn diag(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        self.source.error(pos, message)
    }

    pub fn output_dir(&self, env: &str) -> PathBuf {
        self.output.join(env)
    }

    pub fn member(&self, service: &str) -> Option<&Member> {
        self.services.iter().find(|m| m.service.value == service)
    }

    /// The lane copy of `workload`: `<workload>-<lane>`.
    pub fn copy_name(workload: &str, lane: &str) -> String {
        format!("{workload}-{lane}")
    }
}

/// Where environment `env` of a LanePlan's text writes `aborted:` (its value), if it does:
/// parsed, not checked (for an edit that removes it).
pub fn aborted_at(source: &Arc<Source>, env: &str) -> Option<Pos> {
    let file = yaml::parse_one::<LanePlanFile>(source).ok()?;
    file.spec
        .environments
        .iter()
        .find(|(k, _)| k.value == env)
        .and_then(|(_, e)| e.aborted.as_ref().map(Pos::of))
}

/// Reads a LanePlan whose source is already read.
pub fn load_in(source: Arc<Source>, root: crate::fsio::Root) -> Result<CheckedLanePlan> {
    let file = yaml::parse_one::<LanePlanFile>(&source)?;
    check(source, root, file)
}

/// Checks a parsed LanePlan, every part in file order, and refuses it with every mistake found.
fn check(
    source: Arc<Source>,
    root: crate::fsio::Root,
    file: LanePlanFile,
) -> Result<CheckedLanePlan> {
    let mut d = Diagnostics::default();
    check_names(&source, &mut d, &file);
    let name = &file.metadata.name;
    let spec = &file.spec;
    check_lane_name(&source, &mut d, &spec.baseline);
    let services = check_services(&source, &mut d, spec);
    let lanes = check_lanes(&source, &mut d, spec, &services);
    let ingress = spec
        .ingress
        .as_ref()
        .map(|i| check_ingress(&source, &mut d, i, &services));
    let mut environments = Vec::new();
    if spec.environments.is_empty() {
        d.push(
            source
                .error(Pos::default(), "the plan has no environments")
                .hint("add `environments: {staging: {stage: prepare}}` under spec"),
        );
    }
    for (env_name, e) in &spec.environments {
        if let Some(env) = environment(&source, &mut d, env_name, e, &lanes) {
            environments.push(env);
        }
    }
    d.into_result()?;
    let path = source.path.as_ref().clone();
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let output = dir.join(
        spec.output
            .as_ref()
            .map(|o| o.value.clone())
            .unwrap_or_else(|| crate::plan_file::DEFAULT_OUTPUT.to_string()),
    );
    Ok(CheckedLanePlan {
        name: name.value.clone(),
        header: At::of(&spec.header),
        trace_header: spec
            .trace_header
            .as_ref()
            .map_or_else(|| spec.header.value.clone(), |h| h.value.clone()),
        label: At::of(&spec.label),
        version_label: spec
            .version_label
            .as_ref()
            .map_or_else(|| "version".to_string(), |v| v.value.clone()),
        baseline: At::of(&spec.baseline),
        services,
        ingress,
        lanes,
        output,
        environments,
        path,
        dir,
        source,
        root,
    })
}

/// The plan's names: apiVersion, metadata.name, the lane label, the headers, the version label.
fn check_names(source: &Source, d: &mut Diagnostics, file: &LanePlanFile) {
    let err = |pos: Pos, m: String| source.error(pos, m);
    if file.api_version.value != crate::plan_file::API_VERSION {
        d.push(
            err(
                Pos::of(&file.api_version),
                format!("unsupported apiVersion `{}`", file.api_version.value),
            )
            .hint(format!(
                "use `apiVersion: {}`",
                crate::plan_file::API_VERSION
            )),
        );
    }
    let name = &file.metadata.name;
    if !names::is_dns_label(&name.value) {
        d.push(
            err(
                Pos::of(name),
                format!("metadata.name `{}` is not a DNS-1123 label", name.value),
            )
            .hint("use at most 63 lower-case letters, digits and `-`"),
        );
    }
    let spec = &file.spec;
    if !names::is_label_key(&spec.label.value) {
        d.push(
            err(Pos::of(&spec.label), format!("`{}` is not a valid label key", spec.label.value))
                .hint("a label key is an optional DNS prefix and `/`, then up to 63 of letters, digits, `-`, `_`, `.`"),
        );
    }
    for h in std::iter::once(&spec.header).chain(spec.trace_header.as_ref()) {
        let ok = !h.value.is_empty()
            && h.value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            d.push(
                err(
                    Pos::of(h),
                    format!("`{}` is not a valid header name", h.value),
                )
                .hint("use letters, digits and `-`, e.g. `x-lane`"),
            );
        } else if h.value.chars().any(|c| c.is_ascii_uppercase()) {
            d.push(
                err(
                    Pos::of(h),
                    format!("header `{}` has upper-case letters", h.value),
                )
                .hint(format!(
                    "Istio matches header names in lower case (HTTP/2 sends them so): write `{}`",
                    h.value.to_ascii_lowercase()
                )),
            );
        }
    }
    if let Some(v) = &spec.version_label
        && !names::is_label_key(&v.value)
    {
        d.push(
            err(
                Pos::of(v),
                format!("`{}` is not a valid label key", v.value),
            )
            .hint("the version label is a pod label key, e.g. `version`"),
        );
    }
}

/// A lane's name (the baseline's too) is its pods' label value and part of Deployment names.
fn check_lane_name(source: &Source, d: &mut Diagnostics, n: &Spanned<String>) {
    if !names::is_label_value(&n.value) || !names::is_dns_label(&n.value) {
        d.push(
            source.error(Pos::of(n), format!("lane name `{}` is not a valid label value and DNS label", n.value))
                .hint("a lane's name is its pods' label value and part of Deployment names: lower-case letters, digits and `-`"),
        );
    }
}

/// The chain's services, each named once, with a relative base.
fn check_services(source: &Source, d: &mut Diagnostics, spec: &LaneSpec) -> Vec<Member> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let mut services: Vec<Member> = Vec::new();
    if spec.services.value.is_empty() {
        d.push(
            err(Pos::of(&spec.services), "`services` is empty".into())
                .hint("list the call chain: `- {service: a, workload: a-v1, base: a}`"),
        );
    }
    for s in &spec.services.value {
        for v in [&s.service, &s.workload] {
            if !names::is_dns_label(&v.value) {
                d.push(
                    err(Pos::of(v), format!("`{}` is not a DNS-1123 label", v.value))
                        .hint("Services and Deployments are named with lower-case letters, digits and `-`"),
                );
            }
        }
        if Path::new(&s.base.value).is_absolute() {
            d.push(
                err(Pos::of(&s.base), format!("the base `{}` is an absolute path", s.base.value))
                    .hint("write the base relative to the plan file; canaryplan reads only inside the repository"),
            );
        }
        if services.iter().any(|m| m.service.value == s.service.value) {
            d.push(
                err(
                    Pos::of(&s.service),
                    format!("Service `{}` is listed twice", s.service.value),
                )
                .hint("list each service of the chain once"),
            );
        }
        services.push(Member {
            service: At::of(&s.service),
            workload: At::of(&s.workload),
            base: At::of(&s.base),
        });
    }
    services
}

/// A name that is not a service of the chain, with the closest one.
fn unknown_service(source: &Source, services: &[Member], n: &Spanned<String>) -> Diagnostic {
    let names_list = services
        .iter()
        .map(|m| m.service.value.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let hint =
        match names::did_you_mean(&n.value, services.iter().map(|m| m.service.value.as_str())) {
            Some(s) => format!("did you mean `{s}`? `services:` lists {names_list}"),
            None => format!("add it to `services:` (which lists {names_list}), or remove it here"),
        };
    source
        .error(
            Pos::of(n),
            format!("`{}` is not a service of the chain", n.value),
        )
        .hint(hint)
}

/// The lanes: names apart from each other and the baseline, each with services of the chain
/// (their images in chain order) and a valid version.
fn check_lanes(
    source: &Source,
    d: &mut Diagnostics,
    spec: &LaneSpec,
    services: &[Member],
) -> Vec<CheckedLane> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let known = |n: &str| services.iter().any(|m| m.service.value == n);
    let mut lanes: Vec<CheckedLane> = Vec::new();
    if spec.lanes.is_empty() {
        d.push(
            err(Pos::of(&spec.baseline), "the plan has no lanes".into())
                .hint("add `lanes: {canary: {services: {<service>: {image: ...}}}}`"),
        );
    }
    for (lane_name, lane) in &spec.lanes {
        check_lane_name(source, d, lane_name);
        if lane_name.value == spec.baseline.value {
            d.push(
                err(
                    Pos::of(lane_name),
                    format!("lane `{}` has the baseline's name", lane_name.value),
                )
                .hint("the baseline is the pods of base; give the lane another name"),
            );
        }
        if lanes.iter().any(|l| l.name.value == lane_name.value) {
            d.push(
                err(
                    Pos::of(lane_name),
                    format!(
                        "two lanes are named `{}`, so their pods would carry the same `{}` value",
                        lane_name.value, spec.label.value
                    ),
                )
                .hint("give each lane its own name"),
            );
        }
        if lane.services.value.is_empty() {
            d.push(
                err(
                    Pos::of(&lane.services),
                    format!("lane `{}` has no services", lane_name.value),
                )
                .hint("name the services this lane runs a version of, with their images"),
            );
        }
        let mut images = Vec::new();
        for (svc, ls) in &lane.services.value {
            if !known(&svc.value) {
                d.push(unknown_service(source, services, svc));
            }
            images.push((svc.value.clone(), At::of(&ls.image)));
        }
        // In chain order, whatever order the lane lists them in.
        images.sort_by_key(|(s, _)| services.iter().position(|m| m.service.value == *s));
        if let Some(v) = &lane.version
            && !names::is_label_value(&v.value)
        {
            d.push(
                err(Pos::of(v), format!("`{}` is not a valid label value", v.value))
                    .hint("a lane's version is a pod label value: up to 63 letters, digits, `-`, `_`, `.`"),
            );
        }
        lanes.push(CheckedLane {
            name: At::of(lane_name),
            version: lane
                .version
                .as_ref()
                .map_or_else(|| lane_name.value.clone(), |v| v.value.clone()),
            images,
        });
    }
    lanes
}

/// The ingress: an entry service of the chain, a `namespace/name` gateway, hosts, and match
/// entries that are Istio HTTPMatchRequests.
fn check_ingress(
    source: &Source,
    d: &mut Diagnostics,
    i: &Ingress,
    services: &[Member],
) -> CheckedIngress {
    let err = |pos: Pos, m: String| source.error(pos, m);
    if !services.iter().any(|m| m.service.value == i.service.value) {
        d.push(unknown_service(source, services, &i.service));
    }
    if i.gateway
        .value
        .split_once('/')
        .is_none_or(|(ns, n)| ns.is_empty() || n.is_empty())
    {
        d.push(
            err(
                Pos::of(&i.gateway),
                format!("`{}` is not `namespace/name`", i.gateway.value),
            )
            .hint("name the Istio Gateway with its namespace, e.g. `istio-system/ingressgateway`"),
        );
    }
    if i.hosts.value.is_empty() {
        d.push(
            err(Pos::of(&i.hosts), "`hosts` is empty".into())
                .hint("list the hosts the gateway serves for the chain, e.g. `[\"*\"]`"),
        );
    }
    let mut matches = Vec::new();
    for m in i.match_.iter().flat_map(|m| m.value.iter()) {
        match &m.kind {
            Kind::Map(entries) if !entries.is_empty() => {
                for (k, v) in entries {
                    if let ("headers" | "withoutHeaders", Kind::Map(headers)) =
                        (k.value.as_str(), &v.kind)
                    {
                        for (h, _) in headers {
                            if h.value.chars().any(|c| c.is_ascii_uppercase()) {
                                d.push(
                                    err(
                                        Pos::of(h),
                                        format!("header `{}` has upper-case letters", h.value),
                                    )
                                    .hint(format!(
                                        "Istio matches header names in lower case: write `{}`",
                                        h.value.to_ascii_lowercase()
                                    )),
                                );
                            }
                        }
                    }
                    if !crate::plan_file::HTTP_MATCH_FIELDS.contains(&k.value.as_str()) {
                        d.push(
                            err(
                                Pos::of(k),
                                format!("`{}` is not a field of an Istio match request", k.value),
                            )
                            .hint(format!(
                                "Istio's HTTPMatchRequest has {}",
                                crate::plan_file::HTTP_MATCH_FIELDS.join(", ")
                            )),
                        );
                    }
                }
                matches.push(m.to_json());
            }
            _ => d.push(
                err(
                    m.pos,
                    "an ingress `match` entry is a mapping of Istio HTTPMatchRequest fields".into(),
                )
                .hint("e.g. `- uri: {exact: /mock}`"),
            ),
        }
    }
    CheckedIngress {
        gateway: At::of(&i.gateway),
        hosts: i.hosts.value.iter().map(|h| h.value.clone()).collect(),
        matches,
        service: At::of(&i.service),
    }
}

/// One environment: its name, its stage, and each lane's weight, end and promoted services.
fn environment(
    source: &Source,
    d: &mut Diagnostics,
    name: &Spanned<String>,
    e: &LaneEnvironment,
    lanes: &[CheckedLane],
) -> Option<LaneEnv> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    if !names::is_dns_label(&name.value) {
        d.push(
            err(
                Pos::of(name),
                format!("environment name `{}` is not a DNS-1123 label", name.value),
            )
            .hint(
                "an environment becomes a directory name: use lower-case letters, digits and `-`",
            ),
        );
    }
    let Some(stage) = Stage::parse(&e.stage.value) else {
        let names = Stage::ALL.map(Stage::name);
        d.push(
            err(
                Pos::of(&e.stage),
                format!("unknown stage `{}`", e.stage.value),
            )
            .hint(format!("stages are {}", names.join(", "))),
        );
        return None;
    };
    let mut settings = Vec::new();
    let mut lane_keys = vec![(String::new(), Pos::of(name))];
    let mut promoted = Vec::new();
    for (lane, s) in e.lanes.iter().flatten() {
        if !lanes.iter().any(|l| l.name.value == lane.value) {
            let known: Vec<&str> = lanes.iter().map(|l| l.name.value.as_str()).collect();
            d.push(
                err(
                    Pos::of(lane),
                    format!("`{}` is not a lane of the plan", lane.value),
                )
                .hint(format!("the plan's lanes are {}", known.join(", "))),
            );
            continue;
        }
        let weight = setting_weight(source, d, s);
        // A weight written before shift is kept for it (it applies from shift on).
        let end = setting_end(source, d, s);
        if stage >= Stage::Cleanup1
            && end == End::Remove
            && let Some(w) = weight.as_ref().filter(|w| w.value > 0)
        {
            d.push(
                err(w.pos, format!("lane `{}` still takes {}% of the ingress traffic at {stage}", lane.value, w.value))
                    .hint("a removed lane goes only once no request is sent into it: set its weight to 0 at shift first (or `end: promote` once its versions are in base)"),
            );
        }
        lane_keys.push((lane.value.clone(), Pos::of(lane)));
        if let Some(list) = &s.promoted {
            promoted.push(promoted_of(source, d, lane, list, lanes));
        }
        settings.push((lane.value.clone(), weight, end));
    }
    let total: u32 = settings
        .iter()
        .filter_map(|(_, w, _)| w.as_ref().map(|w| u32::from(w.value)))
        .sum();
    let aborted = e.aborted.as_ref().filter(|a| a.value).map(At::of);
    if let Some(a) = &aborted
        && (stage != Stage::Shift || total > 0)
    {
        d.push(
            err(
                a.pos,
                format!(
                    "`aborted: true` goes with stage shift and every lane at weight 0, and environment `{}` is at {stage} with {total}% in lanes",
                    name.value
                ),
            )
            .hint("`canaryplan abort` writes it; `canaryplan promote --lane` removes it: remove the line, or set the lanes' weights back to 0"),
        );
    }
    if total > 100 {
        d.push(
            err(
                Pos::of(&e.stage),
                format!(
                    "the lanes of environment `{}` take {total}% of the ingress traffic",
                    name.value
                ),
            )
            .hint("lane weights share 100% with the baseline: lower them"),
        );
    }
    Some(LaneEnv {
        name: At::of(name),
        stage: At {
            value: stage,
            pos: Pos::of(&e.stage),
        },
        model: LaneModel::new(stage),
        lanes: settings,
        lane_keys,
        promoted,
        aborted,
    })
}

/// A lane's `weight` in an environment: an integer from 0 to 100.
fn setting_weight(source: &Source, d: &mut Diagnostics, s: &LaneSetting) -> Option<At<u8>> {
    let err = |pos: Pos, m: String| source.error(pos, m);
    match &s.weight {
        None => None,
        Some(node) => match &node.kind {
            Kind::Number(n) if n.as_u64().is_some_and(|w| w <= 100) => Some(At {
                value: n.as_u64().unwrap_or_default() as u8,
                pos: node.pos,
            }),
            _ => {
                d.push(err(node.pos, "a lane's weight is an integer from 0 to 100".into()).hint("the percent of ingress requests without the header sent into the lane, e.g. `weight: 10`"));
                None
            }
        },
    }
}

/// How a lane ends in an environment: `remove` (the default) or `promote`.
fn setting_end(source: &Source, d: &mut Diagnostics, s: &LaneSetting) -> End {
    let err = |pos: Pos, m: String| source.error(pos, m);
    match s.end.as_ref().map(|e| (e, e.value.as_str())) {
        None | Some((_, "remove")) => End::Remove,
        Some((_, "promote")) => End::Promote,
        Some((e, other)) => {
            d.push(err(Pos::of(e), format!("unknown end `{other}`")).hint("use `remove` (the lane goes, at weight 0) or `promote` (its versions are in base first)"));
            End::Remove
        }
    }
}

/// The services promoted in a lane: each a service the lane runs a version of, named once.
fn promoted_of(
    source: &Source,
    d: &mut Diagnostics,
    lane: &Spanned<String>,
    list: &Spanned<Vec<Spanned<String>>>,
    lanes: &[CheckedLane],
) -> Promoted {
    let err = |pos: Pos, m: String| source.error(pos, m);
    let of_lane = lanes.iter().find(|l| l.name.value == lane.value);
    let mut services: Vec<At<String>> = Vec::new();
    for svc in &list.value {
        if of_lane.is_some_and(|l| l.image_of(&svc.value).is_none()) {
            let has: Vec<&str> = of_lane
                .into_iter()
                .flat_map(|l| l.images.iter().map(|(s, _)| s.as_str()))
                .collect();
            d.push(
                err(
                    Pos::of(svc),
                    format!(
                        "lane `{}` has no version of `{}` to promote",
                        lane.value, svc.value
                    ),
                )
                .hint(format!("the lane runs versions of {}", has.join(", "))),
            );
        } else if services.iter().any(|s| s.value == svc.value) {
            d.push(
                err(Pos::of(svc), format!("`{}` is promoted twice", svc.value))
                    .hint("name each service once"),
            );
        } else {
            services.push(At::of(svc));
        }
    }
    Promoted {
        lane: lane.value.clone(),
        pos: Pos::of(list),
        services,
    }
}

/// The labels a lane's pods add to the workload's: the lane label.
pub fn lane_labels(plan: &CheckedLanePlan, lane: &str) -> Labels {
    let mut l = Labels::new();
    l.insert(plan.label.value.clone(), lane.to_string());
    l
}
