//! Every kind, by the `kind:` its plan files name: a new kind is its folder, its `pub mod` line
//! in `kinds/mod.rs` and its line in `KINDS` (nothing else names it). Loading a plan file of any kind, and the JSON
//! Schema of them all, go through here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{AnyPlan, Registration, kind_of};
use crate::error::Result;
use crate::fsio::Root;
use crate::templates::Templates;
use crate::yaml::Source;

/// Every kind, by the `kind:` its plan files name. A plan file without `kind:` (or with one no
/// kind claims) is read by the first, whose parser then says what is wrong.
pub const KINDS: &[Registration] = &[
    super::canary::REGISTRATION,
    super::lanes::REGISTRATION,
    super::gateway_upgrade::REGISTRATION,
    super::revision_upgrade::REGISTRATION,
];

/// Reads and checks a plan file of any kind (`kind:` picks the module).
pub fn load(path: &Path) -> Result<AnyPlan> {
    let (source, root) = crate::plan_file::read(path)?;
    load_in(source, root)
}

/// A plan file's text, checked as the kind it names.
pub fn load_in(source: Arc<Source>, root: Root) -> Result<AnyPlan> {
    let kind = kind_of(&source);
    let r = KINDS
        .iter()
        .find(|r| Some(r.kind) == kind.as_deref())
        .or(KINDS.first());
    match r {
        Some(r) => (r.load)(source, root),
        None => Err(crate::error::Diagnostic::new("canaryplan knows no plan kind").into()),
    }
}

/// Renders every environment of a plan given as text against a base given as text, all in
/// memory (fuzzing, benchmarks): each environment's final stream.
pub fn render_text(plan_text: &str, base_text: &str, templates: &Templates) -> Result<Vec<String>> {
    let source = Source::from_text(
        Path::new(crate::plan_file::DEFAULT_PLAN),
        plan_text.to_string(),
    );
    let base = crate::base::from_text(Path::new("base.yaml"), base_text.to_string())?;
    let root = Root::discover(Path::new("")).unwrap_or(Root {
        dir: PathBuf::new(),
    });
    load_in(source, root)?.render_with(&base, templates)
}

/// The JSON Schema of the plan file: each kind's, picked by `kind:` (the first kind without).
pub fn json_schema() -> serde_json::Value {
    use serde_json::{Value, json};
    let mut defs = serde_json::Map::new();
    for r in KINDS {
        let mut schema = serde_json::to_value((r.schema)()).unwrap_or_default();
        if let Some(o) = schema.as_object_mut() {
            if let Some(Value::Object(d)) = o.remove("$defs") {
                defs.extend(d);
            }
            for k in ["$schema", "$id"] {
                o.remove(k);
            }
        }
        defs.insert(r.kind.to_string(), schema);
    }
    let (default, others) = KINDS
        .split_first()
        .map_or(("", &[][..]), |(d, o)| (d.kind, o));
    let mut pick = json!({"$ref": format!("#/$defs/{default}")});
    for r in others.iter().rev() {
        pick = json!({
            "if": {"properties": {"kind": {"const": r.kind}}, "required": ["kind"]},
            "then": {"$ref": format!("#/$defs/{}", r.kind)},
            "else": pick,
        });
    }
    let mut out = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://canaryplan.io/schemas/v1alpha1/canaryplan.json",
        "title": "canaryplan plan",
        "description": "A CanaryPlan (one service); with `kind:` a LanePlan (lanes across a call chain), a GatewayUpgrade or a RevisionUpgrade (mesh upgrades).",
    });
    if let (Some(o), Some(p)) = (out.as_object_mut(), pick.as_object()) {
        o.extend(p.clone());
        o.insert("$defs".into(), Value::Object(defs));
    }
    out
}
