//! What every plan file shares, whatever its kind: the API version, the default file and
//! output names, label maps, the match fields routes accept, and reading the file confined to
//! its repository.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::Result;
use crate::yaml::Source;

pub const API_VERSION: &str = "canaryplan.io/v1alpha1";
/// The plan read when no path is given.
pub const DEFAULT_PLAN: &str = "canaryplan.yaml";
/// The default output directory, relative to the plan.
pub const DEFAULT_OUTPUT: &str = "canary";

/// A label map (`key: value`), in the order written.
pub type Labels = IndexMap<String, String>;

/// The fields of Istio's HTTPMatchRequest (networking.istio.io/v1).
pub const HTTP_MATCH_FIELDS: [&str; 14] = [
    "name",
    "uri",
    "scheme",
    "method",
    "authority",
    "headers",
    "port",
    "sourceLabels",
    "gateways",
    "queryParams",
    "ignoreUriCase",
    "withoutHeaders",
    "sourceNamespace",
    "statPrefix",
];

/// The fields of Gateway API's HTTPRouteMatch (gateway.networking.k8s.io/v1).
pub const HTTP_ROUTE_MATCH_FIELDS: [&str; 4] = ["path", "headers", "queryParams", "method"];

// Every plan file's `metadata` (a plain comment: a doc comment would enter the JSON Schema).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The plan's name, a DNS-1123 label.
    #[schemars(
        with = "String",
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(max = 63)
    )]
    pub name: Spanned<String>,
}

/// A plan file's text (of any kind) and the repository root it is confined to.
pub fn read(path: &Path) -> Result<(Arc<Source>, crate::fsio::Root)> {
    if std::fs::symlink_metadata(path).is_err() {
        return Err(crate::error::Diagnostic::new("no plan file here")
            .in_file(path)
            .hint("create one with `canaryplan init`, or name the plan file (or use --all)")
            .into());
    }
    let root = crate::fsio::Root::discover(path.parent().unwrap_or(Path::new("")))?;
    let source = Source::read(path, &root)?;
    Ok((source, root))
}
