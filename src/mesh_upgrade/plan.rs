//! What the plan files of both mesh upgrades (GatewayUpgrade, RevisionUpgrade) share:
//! environments that only name a stage, the header checks, the plan's paths, and the rule for
//! a revision's name.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Diagnostic, Diagnostics};
use crate::names;
use crate::yaml::{At, Pos, Source};

/// An environment of a plan kind whose only setting is the stage.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageOnly {
    /// The stage to render.
    #[schemars(with = "String")]
    pub stage: Spanned<String>,
}

#[derive(Debug, Clone)]
pub struct Env {
    pub name: At<String>,
    pub stage: At<String>,
}

/// Checks the environments of a kind whose environments only say a stage of `stages`.
pub fn stage_envs(
    source: &Source,
    d: &mut Diagnostics,
    envs: &IndexMap<Spanned<String>, StageOnly>,
    stages: &[String],
) -> Vec<Env> {
    let mut out = Vec::new();
    if envs.is_empty() {
        d.push(
            source
                .error(Pos::default(), "the plan has no environments")
                .hint("add `environments: {staging: {stage: prepare}}` under spec"),
        );
    }
    for (name, e) in envs {
        if !names::is_dns_label(&name.value) {
            d.push(source.error(Pos::of(name), format!("environment name `{}` is not a DNS-1123 label", name.value)).hint("an environment becomes a directory name: lower-case letters, digits and `-`"));
        }
        if !stages.contains(&e.stage.value) {
            let hint = match names::did_you_mean(&e.stage.value, stages.iter().map(String::as_str))
            {
                Some(s) => format!("did you mean `{s}`? the stages are {}", stages.join(", ")),
                None => format!("the stages are {}", stages.join(", ")),
            };
            d.push(
                source
                    .error(
                        Pos::of(&e.stage),
                        format!("unknown stage `{}`", e.stage.value),
                    )
                    .hint(hint),
            );
            continue;
        }
        out.push(Env {
            name: At::of(name),
            stage: At::of(&e.stage),
        });
    }
    out
}

/// The checks every mesh upgrade file starts with: the apiVersion, a relative base.
pub fn check_header(
    source: &Source,
    d: &mut Diagnostics,
    api_version: &Spanned<String>,
    base: &Spanned<String>,
) {
    if api_version.value != crate::plan_file::API_VERSION {
        d.push(
            source
                .error(
                    Pos::of(api_version),
                    format!("unsupported apiVersion `{}`", api_version.value),
                )
                .hint(format!(
                    "use `apiVersion: {}`",
                    crate::plan_file::API_VERSION
                )),
        );
    }
    if Path::new(&base.value).is_absolute() {
        d.push(
            source
                .error(
                    Pos::of(base),
                    format!("the base `{}` is an absolute path", base.value),
                )
                .hint("write the base relative to the plan file"),
        );
    }
}

/// The plan's path, its directory and its output directory (`output`, default `canary`).
pub fn paths(source: &Source, output: &Option<Spanned<String>>) -> (PathBuf, PathBuf, PathBuf) {
    let path = source.path.as_ref().clone();
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let output = dir.join(
        output
            .as_ref()
            .map(|o| o.value.clone())
            .unwrap_or_else(|| crate::plan_file::DEFAULT_OUTPUT.into()),
    );
    (path, dir, output)
}

/// A revision names istiod's Service (`istiod-<revision>`) and its webhooks: a DNS-1123 label.
/// `1.23.1` is the version, not a revision: pods would find no injector.
pub fn revision_name_error(source: &Source, r: &Spanned<String>) -> Option<Diagnostic> {
    if names::is_dns_label(&r.value) {
        return None;
    }
    let fixed: String = r
        .value
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let fixed = fixed.trim_matches('-').to_string();
    let hint = if names::is_dns_label(&fixed) {
        format!(
            "did you mean `{fixed}`? a revision is a DNS label (istiod's Service is `istiod-<revision>`), like `1-23-1` for version 1.23.1"
        )
    } else {
        "a revision is a DNS label (istiod's Service is `istiod-<revision>`), like `1-23-1` for version 1.23.1".to_string()
    };
    Some(
        source
            .error(
                Pos::of(r),
                format!("revision `{}` is not a DNS label", r.value),
            )
            .hint(hint),
    )
}
