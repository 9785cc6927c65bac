//! The RevisionUpgrade file (`kind: RevisionUpgrade`): the Istio control plane's canary
//! upgrade, namespaces moved to the new revision wave by wave (by relabeling, or by revision
//! tags), workloads restarted declaratively.

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
use crate::yaml::{self, Pos, Source};

pub const KIND: &str = "RevisionUpgrade";

/// An Istio control plane revision canary, namespace by namespace.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "RevisionUpgrade")]
pub struct RevisionUpgradeFile {
    /// Always `canaryplan.io/v1alpha1`.
    #[schemars(with = "String", extend("const" = "canaryplan.io/v1alpha1"))]
    pub api_version: Spanned<String>,
    /// Always `RevisionUpgrade`.
    #[schemars(with = "String", extend("const" = "RevisionUpgrade"))]
    pub kind: Spanned<String>,
    pub metadata: crate::plan_file::Metadata,
    pub spec: RevisionSpec,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevisionSpec {
    /// Namespaces, their workloads and (with tags) the tag webhooks, relative to the plan.
    #[schemars(with = "String")]
    pub base: Spanned<String>,
    /// The revision installed today, e.g. `1-22-1`.
    #[schemars(with = "String")]
    pub from: Spanned<String>,
    /// The new revision, installed beside it, e.g. `1-23-1`.
    #[schemars(with = "String")]
    pub to: Spanned<String>,
    /// Namespaces moved per wave, in order.
    #[schemars(with = "Vec<Vec<String>>")]
    pub waves: Spanned<Vec<Spanned<Vec<Spanned<String>>>>>,
    /// Move revision tags instead of relabeling namespaces to the revision.
    #[serde(default)]
    pub tags: Option<Tags>,
    /// Overlays are written to `<output>/<environment>/` (default `canary`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub output: Option<Spanned<String>>,
    #[schemars(with = "IndexMap<String, StageOnly>")]
    pub environments: IndexMap<Spanned<String>, StageOnly>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tags {
    /// The tag namespaces use today (it points at `from` until `promote-tags`).
    #[schemars(with = "String")]
    pub stable: Spanned<String>,
    /// The tag that points at `to`: waves move namespaces to it (absent: waves label
    /// namespaces with the revision `to` itself).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub canary: Option<Spanned<String>>,
}

#[derive(Debug)]
pub struct CheckedRevisionUpgrade {
    pub source: Arc<Source>,
    pub root: crate::fsio::Root,
    pub path: PathBuf,
    pub dir: PathBuf,
    pub name: String,
    pub base: At<String>,
    pub from: At<String>,
    pub to: At<String>,
    pub waves: Vec<Vec<At<String>>>,
    /// The stable tag, and the canary tag if waves move namespaces to one.
    pub tags: Option<(At<String>, Option<At<String>>)>,
    pub output: PathBuf,
    /// The stages: prepare, wave-1 … wave-N, promote-tags (with tags), done.
    pub stages: Vec<String>,
    pub environments: Vec<Env>,
}

impl CheckedRevisionUpgrade {
    pub fn diag(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        self.source.error(pos, message)
    }

    pub fn ladder(&self) -> Vec<&str> {
        self.stages.iter().map(String::as_str).collect()
    }

    /// How many waves the stage has moved (all of them from `promote-tags` on; none at done,
    /// where the base holds the end state).
    pub fn waves_at(&self, stage: &str) -> usize {
        match stage {
            "prepare" | "done" => 0,
            "promote-tags" => self.waves.len(),
            s => s
                .strip_prefix("wave-")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        }
    }
}

pub fn load_in(source: Arc<Source>, root: crate::fsio::Root) -> Result<CheckedRevisionUpgrade> {
    let file = yaml::parse_one::<RevisionUpgradeFile>(&source)?;
    let mut d = Diagnostics::default();
    let err = |pos: Pos, m: String| source.error(pos, m);
    check_header(&source, &mut d, &file.api_version, &file.spec.base);
    let spec = &file.spec;
    for r in [&spec.from, &spec.to] {
        if let Some(diag) = revision_name_error(&source, r) {
            d.push(diag);
        }
    }
    if spec.from.value == spec.to.value {
        d.push(
            err(
                Pos::of(&spec.to),
                format!("`from` and `to` are both revision {}", spec.to.value),
            )
            .hint("`to` is the new revision installed beside `from`"),
        );
    }
    let mut waves: Vec<Vec<At<String>>> = Vec::new();
    if spec.waves.value.is_empty() {
        d.push(
            err(Pos::of(&spec.waves), "`waves` is empty".into()).hint(
                "list the namespaces moved per wave, e.g. `waves: [[canary-ns], [ns-1, ns-2]]`",
            ),
        );
    }
    for (i, wave) in spec.waves.value.iter().enumerate() {
        if wave.value.is_empty() {
            d.push(
                err(Pos::of(wave), format!("wave {} has no namespaces", i + 1))
                    .hint("remove the empty wave, or name its namespaces"),
            );
        }
        let mut out = Vec::new();
        for ns in &wave.value {
            if !names::is_dns_label(&ns.value) {
                d.push(
                    err(
                        Pos::of(ns),
                        format!("`{}` is not a namespace name", ns.value),
                    )
                    .hint("namespaces are DNS-1123 labels"),
                );
            }
            if let Some(j) = waves
                .iter()
                .position(|w| w.iter().any(|x| x.value == ns.value))
            {
                d.push(
                    err(
                        Pos::of(ns),
                        format!("namespace `{}` is in wave {} already", ns.value, j + 1),
                    )
                    .hint("each namespace moves in one wave"),
                );
            } else if out.iter().any(|x: &At<String>| x.value == ns.value) {
                d.push(
                    err(
                        Pos::of(ns),
                        format!("namespace `{}` is listed twice in this wave", ns.value),
                    )
                    .hint("list it once"),
                );
            }
            out.push(At::of(ns));
        }
        waves.push(out);
    }
    let tags = spec.tags.as_ref().map(|t| {
        for v in std::iter::once(&t.stable).chain(t.canary.as_ref()) {
            if !names::is_dns_label(&v.value) {
                d.push(err(Pos::of(v), format!("`{}` is not a valid tag name", v.value)).hint("revision tags are DNS-1123 labels, e.g. `prod-stable`"));
            }
        }
        if let Some(c) = &t.canary
            && t.stable.value == c.value
        {
            d.push(err(Pos::of(c), "the stable and canary tags are the same".into()).hint("name two tags: the one namespaces use today, and the one pointing at the new revision"));
        }
        (At::of(&t.stable), t.canary.as_ref().map(At::of))
    });
    let mut stages = vec!["prepare".to_string()];
    stages.extend((1..=waves.len()).map(|i| format!("wave-{i}")));
    if tags.is_some() {
        stages.push("promote-tags".into());
    }
    stages.push("done".into());
    let environments = stage_envs(&source, &mut d, &spec.environments, &stages);
    d.into_result()?;
    let (path, dir, output) = paths(&source, &spec.output);
    Ok(CheckedRevisionUpgrade {
        name: file.metadata.name.value.clone(),
        base: At::of(&spec.base),
        from: At::of(&spec.from),
        to: At::of(&spec.to),
        waves,
        tags,
        output,
        stages,
        environments,
        path,
        dir,
        source,
        root,
    })
}
