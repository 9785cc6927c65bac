//! The GatewayUpgrade file (`kind: GatewayUpgrade`): a canary gateway Deployment beside the
//! old one behind the same Service, then the upgrade of the gateway itself.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Diagnostic, Diagnostics, Result};
use crate::mesh_upgrade::plan::{
    Env, StageOnly, check_header, paths, revision_name_error, stage_envs,
};
use crate::names;
use crate::yaml::At;
use crate::yaml::{self, Kind, Node, Pos, Source};

pub const KIND: &str = "GatewayUpgrade";

/// The stages, in order.
pub const STAGES: [&str; 5] = ["prepare", "canary", "upgrade", "cleanup", "done"];

/// A gateway upgrade: a canary gateway Deployment with the new version, a pod share of the
/// gateway's traffic, then every gateway pod upgraded and the canary removed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "GatewayUpgrade")]
pub struct GatewayUpgradeFile {
    /// Always `canaryplan.io/v1alpha1`.
    #[schemars(with = "String", extend("const" = "canaryplan.io/v1alpha1"))]
    pub api_version: Spanned<String>,
    /// Always `GatewayUpgrade`.
    #[schemars(with = "String", extend("const" = "GatewayUpgrade"))]
    pub kind: Spanned<String>,
    pub metadata: crate::plan_file::Metadata,
    pub spec: GatewaySpec,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The gateway's Deployment and Service (and HPA, PDB if any), relative to the plan.
    #[schemars(with = "String")]
    pub base: Spanned<String>,
    /// The gateway Deployment.
    #[schemars(with = "String")]
    pub gateway: Spanned<String>,
    /// The gateway Service; default: the Service whose selector matches the gateway's pods.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub service: Option<Spanned<String>>,
    /// The new version: an `istio.io/rev` revision (injected gateways), a proxy image, or both.
    pub to: Target,
    /// Pods of the canary gateway (default 1: the blast radius is one pod).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub replicas: Option<Node>,
    /// Overlays are written to `<output>/<environment>/` (default `canary`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub output: Option<Spanned<String>>,
    #[schemars(with = "IndexMap<String, StageOnly>")]
    pub environments: IndexMap<Spanned<String>, StageOnly>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The `istio.io/rev` label of the new control plane revision.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub revision: Option<Spanned<String>>,
    /// The proxy container's new image.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
}

#[derive(Debug)]
pub struct CheckedGatewayUpgrade {
    pub source: Arc<Source>,
    pub root: crate::fsio::Root,
    pub path: PathBuf,
    pub dir: PathBuf,
    pub name: String,
    pub base: At<String>,
    pub gateway: At<String>,
    pub service: Option<At<String>>,
    pub revision: Option<At<String>>,
    pub image: Option<At<String>>,
    pub to_pos: Pos,
    pub replicas: u32,
    pub output: PathBuf,
    pub environments: Vec<Env>,
}

impl CheckedGatewayUpgrade {
    pub fn diag(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        self.source.error(pos, message)
    }

    pub fn canary_name(&self) -> String {
        format!("{}-canary", self.gateway.value)
    }
}

pub fn load_in(source: Arc<Source>, root: crate::fsio::Root) -> Result<CheckedGatewayUpgrade> {
    let file = yaml::parse_one::<GatewayUpgradeFile>(&source)?;
    let mut d = Diagnostics::default();
    let err = |pos: Pos, m: String| source.error(pos, m);
    check_header(&source, &mut d, &file.api_version, &file.spec.base);
    let spec = &file.spec;
    for v in [&spec.gateway].into_iter().chain(spec.service.as_ref()) {
        if !names::is_dns_label(&v.value) {
            d.push(
                err(Pos::of(v), format!("`{}` is not a DNS-1123 label", v.value)).hint(
                    "Deployments and Services are named with lower-case letters, digits and `-`",
                ),
            );
        }
    }
    if spec.to.revision.is_none() && spec.to.image.is_none() {
        d.push(err(Pos::of(&spec.gateway), "`to` names neither a revision nor an image".into()).hint("set `to: {revision: 1-23-1}` (injected gateways), `to: {image: ...}` (the proxy image), or both"));
    }
    if let Some(r) = &spec.to.revision
        && let Some(diag) = revision_name_error(&source, r)
    {
        d.push(diag);
    }
    let replicas = match &spec.replicas {
        None => 1,
        Some(n) => match &n.kind {
            Kind::Number(x) if x.as_u64().is_some_and(|v| (1..=100).contains(&v)) => {
                x.as_u64().unwrap_or(1) as u32
            }
            _ => {
                d.push(
                    err(n.pos, "replicas is a number of pods from 1".into())
                        .hint("one canary pod keeps the blast radius to one pod: `replicas: 1`"),
                );
                1
            }
        },
    };
    let stages: Vec<String> = STAGES.iter().map(|s| s.to_string()).collect();
    let environments = stage_envs(&source, &mut d, &spec.environments, &stages);
    d.into_result()?;
    let (path, dir, output) = paths(&source, &spec.output);
    Ok(CheckedGatewayUpgrade {
        name: file.metadata.name.value.clone(),
        base: At::of(&spec.base),
        gateway: At::of(&spec.gateway),
        service: spec.service.as_ref().map(At::of),
        revision: spec.to.revision.as_ref().map(At::of),
        image: spec.to.image.as_ref().map(At::of),
        to_pos: Pos::of(&spec.gateway),
        replicas,
        output,
        environments,
        path,
        dir,
        source,
        root,
    })
}
