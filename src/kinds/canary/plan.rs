//! The plan file, `canaryplan.io/v1alpha1`, exactly as users write it. Field names are a
//! contract (see product.md). Unknown fields are errors. Values keep their positions so later
//! checks can point at them; `check` turns this into a `CheckedPlan`.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::Result;
use crate::yaml::{self, Node, Source};

pub use crate::plan_file::{API_VERSION, DEFAULT_PLAN, Labels};
pub const KIND: &str = "CanaryPlan";

/// A canary release plan: which Service and Deployment, the versions, and per environment the
/// stage and weight to render.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "CanaryPlan", extend("$id" = "https://canaryplan.io/schemas/v1alpha1/canaryplan.json"))]
pub struct PlanFile {
    /// Always `canaryplan.io/v1alpha1`.
    #[schemars(with = "String", extend("const" = "canaryplan.io/v1alpha1"))]
    pub api_version: Spanned<String>,
    /// Always `CanaryPlan`.
    #[schemars(with = "String", extend("const" = "CanaryPlan"))]
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    pub spec: Spec,
}

pub use crate::plan_file::Metadata;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// File or directory (relative to the plan) holding the app's manifests.
    #[schemars(with = "String")]
    pub base: Spanned<String>,
    /// The Service in base that receives the traffic.
    #[schemars(with = "String")]
    pub service: Spanned<String>,
    /// The Deployment in base that becomes the canary.
    #[schemars(with = "String")]
    pub workload: Spanned<String>,
    /// The VirtualService in base to patch; absent: the one routing to the Service, or a
    /// generated one for the mesh-internal host when base has none.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub virtual_service: Option<Spanned<String>>,
    /// The VirtualServices in base to patch, all alike (e.g. the ingress gateway's and the
    /// mesh's); absent: every VirtualService routing to the Service. A delegate is patched,
    /// never its root. `virtualService: x` is the same as `virtualServices: [x]`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub virtual_services: Option<Spanned<Vec<Spanned<String>>>>,
    /// Only these named http routes; default: every http/tcp/tls route to the Service host.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub routes: Option<Vec<Spanned<String>>>,
    /// Only the tcp and tls routes for these ports (their `match[].port`; a route without
    /// one serves every port); default: every tcp/tls route to the Service host.
    #[serde(default)]
    #[schemars(with = "Option<Vec<u16>>")]
    pub ports: Option<Spanned<Vec<Node>>>,
    /// Shadow traffic: this percent (0..100, decimals allowed) of the requests the stable
    /// subset serves is copied to the canary subset at stages route and shift; responses of
    /// the copy are dropped. An environment's `mirror` replaces this one.
    #[serde(default)]
    #[schemars(with = "Option<f64>", range(min = 0, max = 100))]
    pub mirror: Option<Node>,
    /// `istio` (default): DestinationRule subsets and VirtualService weights. `gateway-api`:
    /// per-version Services and HTTPRoute backendRef weights.
    #[serde(default)]
    #[schemars(with = "Option<Traffic>")]
    pub traffic: Option<Spanned<String>>,
    /// Gateway API: the HTTPRoutes in base to patch; absent: every HTTPRoute in base with a
    /// backendRef to the Service.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub http_routes: Option<Spanned<Vec<Spanned<String>>>>,
    /// Gateway API: `generate` adds a GAMMA HTTPRoute (its parent is the Service itself) so
    /// mesh callers get the same weights; absent: only the HTTPRoutes in base are weighted.
    #[serde(default)]
    #[schemars(with = "Option<MeshRoute>")]
    pub mesh_route: Option<Spanned<String>>,
    /// `succession` (default): the stable copy pins the last stable image. `coexistence`: one
    /// image, the version chosen by environment variables. `versioned`: one Deployment per
    /// version (Istio's own layout); the canary is a new Deployment beside the stable one.
    #[serde(default)]
    #[schemars(with = "Option<Method>")]
    pub method: Option<Spanned<String>>,
    /// Pod label that tells subsets apart (default: `version`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub version_label: Option<Spanned<String>>,
    /// Labels added to the pods of both versions.
    #[serde(default)]
    #[schemars(with = "Option<Labels>")]
    pub pod_labels: Option<Spanned<Labels>>,
    pub stable: Stable,
    pub canary: Canary,
    /// Service selector patch applied while both versions serve.
    #[serde(default)]
    pub selector: Option<SelectorPatch>,
    /// Sources allowed to reach the stable copy (an AuthorizationPolicy).
    #[serde(default)]
    #[schemars(with = "Option<Vec<AllowFrom>>")]
    pub allow_from: Option<Vec<Spanned<AllowFrom>>>,
    /// The weight ladder `promote` walks, ascending, ending at 100. An entry may be
    /// `{weight: N, pause: 20s}` (or `pause: manual`): how long a controller the plan is
    /// exported to waits at that weight.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Step>>")]
    pub steps: Option<Spanned<Vec<Node>>>,
    /// Metric gates for `canaryplan gate` and `promote --gate`, exported to controllers as an
    /// AnalysisTemplate.
    #[serde(default)]
    pub analysis: Option<crate::analysis::Analysis>,
    /// Test traffic: requests matching ANY of these (Istio HTTPMatchRequests: headers, cookies
    /// as the `cookie` header, sourceLabels, uri...) go to the canary whatever the weight, at
    /// stages route, shift and cleanup-1. An environment's `match` replaces this one.
    #[serde(default, rename = "match")]
    #[schemars(with = "Option<Vec<serde_json::Map<String, serde_json::Value>>>")]
    pub match_: Option<Spanned<Vec<Node>>>,
    /// The mesh's trust domain, for the principals of AuthorizationPolicies (default
    /// `cluster.local`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub trust_domain: Option<Spanned<String>>,
    /// Overlays are written to `<output>/<environment>/` (relative to the plan; default `canary`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub output: Option<Spanned<String>>,
    /// Per environment: the stage and weight to render.
    #[schemars(with = "IndexMap<String, Environment>")]
    pub environments: IndexMap<Spanned<String>, Environment>,
}

/// Which API routes the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Traffic {
    /// DestinationRule subsets and VirtualService weights.
    Istio,
    /// Per-version Services and HTTPRoute backendRef weights (Kubernetes Gateway API).
    GatewayApi,
}

/// What canaryplan does for mesh callers in Gateway API mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MeshRoute {
    /// A GAMMA HTTPRoute whose parent is the Service, weighted like the others.
    Generate,
}

/// A step of the weight ladder: a weight, or a weight and its pause.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // describes the schema; `check` reads steps as nodes
pub enum Step {
    Weight(u8),
    Paused {
        weight: u8,
        /// `manual`, or a duration (`20s`, `5m`).
        pause: String,
    },
}

/// How the stable version is kept running next to the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Succession,
    Coexistence,
    Versioned,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stable {
    /// The stable version's name, e.g. `v1`; the copy is `<workload>-<version>`.
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    /// Succession: the image pinned on the copy's main container (a digest is best).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    /// The main container's name; default: the first container.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub container: Option<Spanned<String>>,
    /// Label overrides that make the copy's selector disjoint from the original's.
    #[serde(default)]
    #[schemars(with = "Option<Labels>")]
    pub labels: Option<Spanned<Labels>>,
    /// Coexistence: environment variables that select the stable implementation.
    #[serde(default)]
    #[schemars(with = "Option<Labels>")]
    pub env: Option<Spanned<Labels>>,
    /// The DestinationRule subset of this version (default: the version's name); reuse the
    /// names your base already routes to.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub subset: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// The canary version's name, e.g. `v2`.
    #[schemars(with = "String")]
    pub version: Spanned<String>,
    /// Versioned: the image of the new Deployment `<app>-<version>`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    /// Coexistence: environment variables that select the canary implementation.
    #[serde(default)]
    #[schemars(with = "Option<Labels>")]
    pub env: Option<Spanned<Labels>>,
    /// The DestinationRule subset of this version (default: the version's name).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub subset: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectorPatch {
    /// Selector keys removed while both versions serve.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub remove: Vec<Spanned<String>>,
    /// Selector entries added while both versions serve.
    #[serde(default)]
    #[schemars(with = "Option<Labels>")]
    pub add: Option<Spanned<Labels>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AllowFrom {
    pub namespace: String,
    pub service_account: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Test traffic for this environment, replacing the plan's `match`.
    #[serde(default, rename = "match")]
    #[schemars(with = "Option<Vec<serde_json::Map<String, serde_json::Value>>>")]
    pub match_: Option<Spanned<Vec<Node>>>,
    /// Shadow traffic for this environment, replacing the plan's `mirror` (`0`: none).
    #[serde(default)]
    #[schemars(with = "Option<f64>", range(min = 0, max = 100))]
    pub mirror: Option<Node>,
    /// Hosts of the VirtualService in this environment.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub hosts: Option<Vec<Spanned<String>>>,
    /// The stage to render.
    #[schemars(with = "crate::ladder::Stage")]
    pub stage: Spanned<String>,
    /// Percent of traffic on the canary (stage `shift`), an integer 0..100.
    #[serde(default)]
    #[schemars(with = "Option<u8>", range(max = 100))]
    pub weight: Option<Node>,
    /// Written by `canaryplan abort` (with `weight: 0`): the release is rolled back here, and
    /// no request reaches the canary — no test route, no mirror. `promote` removes it.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub aborted: Option<Spanned<bool>>,
    /// A base for this environment only (relative to the plan).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub base: Option<Spanned<String>>,
}

/// A parsed plan file and the text it came from.
#[derive(Debug)]
pub struct Plan {
    pub source: Arc<Source>,
    pub file: PlanFile,
    /// The repository root every path the plan names must stay inside.
    pub root: crate::fsio::Root,
}

impl Plan {
    pub fn load(path: &Path) -> Result<Plan> {
        let (source, root) = Plan::read(path)?;
        Plan::parse_in(source, root)
    }

    /// A plan file's text (of any kind) and the repository root it is confined to.
    pub fn read(path: &Path) -> Result<(Arc<Source>, crate::fsio::Root)> {
        crate::plan_file::read(path)
    }

    /// A plan held in memory; paths it names are confined to the current directory's root.
    pub fn parse(source: Arc<Source>) -> Result<Plan> {
        let dir = source.path.parent().unwrap_or(Path::new("")).to_path_buf();
        let root = crate::fsio::Root::discover(&dir).unwrap_or(crate::fsio::Root { dir });
        Plan::parse_in(source, root)
    }

    pub fn parse_in(source: Arc<Source>, root: crate::fsio::Root) -> Result<Plan> {
        if source.text.trim().is_empty() {
            return Err(source
                .error(yaml::Pos::default(), "the plan file is empty")
                .hint("start from `canaryplan init`, or see the plan format in the README")
                .into());
        }
        let file = yaml::parse_one::<PlanFile>(&source)?;
        Ok(Plan { source, file, root })
    }
}
