//! The record an overlay keeps of its final stream: the plan entry it was rendered from and
//! the traffic model of what it renders. It is what "on disk" means for the invariants: the
//! overlay's own files cannot say it, since they reference a base that a commit may change.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::Model;
use crate::error::Result;
use crate::yaml::{self, Source};

/// The record's format version; a record of another version is refused with a hint.
pub const VERSION: u32 = 1;
/// Its file name inside an overlay.
pub const FILE: &str = "canaryplan-record.yaml";

/// What an environment's overlay was rendered from, and what it renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    /// The plan's entry for the environment (stage, weight, lanes...), as its kind writes it:
    /// the engine only compares it for equality.
    pub entry: Value,
    pub model: Model,
}

impl Record {
    pub fn new(entry: Value, model: Model) -> Record {
        Record {
            version: VERSION,
            entry,
            model,
        }
    }

    /// The record as YAML, through the project's serializer.
    pub fn to_yaml(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        yaml::to_yaml(&value)
    }
}

/// Reads a record from its text; `path` is where it was read, for located errors.
pub fn parse(path: &Path, text: &str) -> Result<Record> {
    let source = Source::from_text(path, text.to_string());
    let hint = "the record is written by `canaryplan render`: render the environment again (from a clean checkout of the overlay if it was edited by hand)";
    // The version first, so that a record of another version says so rather than what field
    // it does not know.
    let nodes = yaml::parse_documents(&source).map_err(|mut e| {
        for d in &mut e.diagnostics {
            d.hint = Some(hint.to_string());
        }
        e
    })?;
    let Some(doc) = nodes.first() else {
        return Err(source
            .error(yaml::Pos::default(), "the traffic record is empty")
            .hint(hint)
            .into());
    };
    let version = doc.to_json().get("version").and_then(Value::as_u64);
    if version != Some(u64::from(VERSION)) {
        let at = doc.pos_of(&["version"]);
        let what = match version {
            Some(v) => format!(
                "the traffic record has version {v}; this canaryplan reads version {VERSION}"
            ),
            None => "the traffic record has no `version`".to_string(),
        };
        return Err(source.error(at, what).hint(hint).into());
    }
    yaml::parse_one::<Record>(&source).map_err(|mut e| {
        for d in &mut e.diagnostics {
            d.hint = Some(hint.to_string());
        }
        e
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn sample() -> Record {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": "registry.example/web:1.0"}]}}}}),
        ];
        Record::new(
            json!({"stage": "shift", "weight": 10}),
            super::super::model(&objects),
        )
    }

    #[test]
    fn a_record_reads_back_what_was_written() {
        let r = sample();
        let text = r.to_yaml();
        assert_eq!(parse(Path::new("record.yaml"), &text).unwrap(), r);
        // Byte for byte the same each time.
        assert_eq!(text, sample().to_yaml());
        assert!(text.starts_with("version: 1\n"), "{text}");
    }

    #[test]
    fn another_version_is_refused_where_it_says_so() {
        let text = sample().to_yaml().replace("version: 1", "version: 7");
        let e = parse(Path::new("canary/production/canaryplan-record.yaml"), &text).unwrap_err();
        let d = &e.diagnostics[0];
        assert_eq!(
            d.message,
            "the traffic record has version 7; this canaryplan reads version 1"
        );
        let at = d.location.as_ref().unwrap();
        assert_eq!((at.line, at.column), (1, 10));
        assert!(
            d.hint
                .as_deref()
                .unwrap()
                .contains("render the environment again")
        );
    }

    #[test]
    fn a_corrupt_record_is_a_located_error() {
        let text = sample().to_yaml().replace("replicas: 2", "replicas: two");
        let e = parse(Path::new("record.yaml"), &text).unwrap_err();
        let d = &e.diagnostics[0];
        assert!(d.location.is_some(), "{e}");
        assert!(d.hint.is_some());
        let e = parse(
            Path::new("record.yaml"),
            "version: 1\nentry: {}\nmodel: [\n",
        )
        .unwrap_err();
        assert!(e.diagnostics[0].location.is_some(), "{e}");
        let e = parse(Path::new("record.yaml"), "").unwrap_err();
        assert_eq!(e.diagnostics[0].message, "the traffic record is empty");
    }
}
