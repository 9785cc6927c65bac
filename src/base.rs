//! The app's base manifests: a YAML file, a directory of YAML files, or a kustomize directory
//! (its `resources` and `namespace` are read; other transformers are refused, because the
//! final stream would then differ from what kustomize builds). Every object keeps its source
//! so problems in base files are located too.

use crate::pointer::Pointer as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Diagnostic, Error, Result};
use crate::fsio::{PathKind, Root};
use crate::yaml::{self, Kind, Pos, Source};

/// One object from a base file.
#[derive(Debug, Clone)]
pub struct BaseObject {
    pub value: Value,
    /// Which document of `source` it is, to locate errors (parsed again with positions only
    /// when a message needs one: the fast path reads plain values).
    pub document: usize,
    pub source: Arc<Source>,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl BaseObject {
    pub fn is(&self, kind: &str, name: &str) -> bool {
        self.kind == kind && self.name == name
    }

    /// The group of the apiVersion (`""` for core).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value.at("/metadata/namespace").and_then(Value::as_str)
    }

    /// A diagnostic at the value under `path` in this object's file.
    pub fn error(&self, path: &[&str], message: impl Into<String>) -> Diagnostic {
        self.source
            .error(locate(&self.source, self.document, path), message)
    }
}

/// The base of one environment.
#[derive(Debug)]
pub struct Base {
    /// The path as resolved (plan directory joined with the plan's value).
    pub path: PathBuf,
    /// Whether kustomize can build it as it is (a directory with a kustomization file).
    pub is_kustomization: bool,
    pub objects: Vec<BaseObject>,
}

impl Base {
    pub fn find(&self, kind: &str, name: &str) -> Option<&BaseObject> {
        self.objects.iter().find(|o| o.is(kind, name))
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a BaseObject> + 'a {
        self.objects.iter().filter(move |o| o.kind == kind)
    }
}

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
/// The kustomization fields whose effect canaryplan reproduces.
const KUSTOMIZATION_FIELDS: [&str; 4] = ["apiVersion", "kind", "resources", "namespace"];

/// The kustomization file of `dir`, if it has one (it is read through the root's checks).
pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| std::fs::symlink_metadata(p).is_ok())
}

/// Loads a base: every file it reads resolves inside `root` (see `fsio`).
pub fn load(path: &Path, root: &Root) -> Result<Base> {
    let mut objects = Vec::new();
    let mut is_kustomization = false;
    if root.kind(path)? == PathKind::Dir {
        if let Some(k) = kustomization_file(path) {
            is_kustomization = true;
            load_kustomization(&k, root, &mut objects, 0)?;
        } else {
            for file in yaml_files(path, root)? {
                load_file(&file, root, &mut objects)?;
            }
        }
    } else {
        load_file(path, root, &mut objects)?;
    }
    Ok(Base {
        path: path.to_path_buf(),
        is_kustomization,
        objects,
    })
}

/// A base from one YAML text held in memory (fuzzing, tests); kustomize cannot build it.
pub fn from_text(path: &Path, text: String) -> Result<Base> {
    let mut objects = Vec::new();
    let source = Source::from_text(path, text);
    for (i, doc) in yaml::parse_values(&source)?.into_iter().enumerate() {
        if !doc.is_null() {
            objects.push(object(&source, i, doc)?);
        }
    }
    Ok(Base {
        path: path.to_path_buf(),
        is_kustomization: false,
        objects,
    })
}

/// The YAML files of a directory, sorted by name, without kustomization files. A YAML entry
/// that is neither a file nor a directory (a FIFO, a device) is refused, not skipped.
fn yaml_files(dir: &Path, root: &Root) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, &e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, &e))?;
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if is_yaml
            && !KUSTOMIZATION_FILES.contains(&name.as_str())
            && !name.starts_with('.')
            && root.kind(&p)? == PathKind::File
        {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn load_kustomization(
    file: &Path,
    root: &Root,
    objects: &mut Vec<BaseObject>,
    depth: usize,
) -> Result<()> {
    let source = Source::read(file, root)?;
    let docs = yaml::parse_documents(&source)?;
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let Some(doc) = docs.first() else {
        return Ok(());
    };
    let Kind::Map(entries) = &doc.kind else {
        return Err(source
            .error(doc.pos, "a kustomization must be a mapping")
            .into());
    };
    if depth > 16 {
        return Err(source
            .error(doc.pos, "kustomizations nest more than 16 deep")
            .hint("check for a cycle in `resources`")
            .into());
    }
    let mut namespace = None;
    let first = objects.len();
    for (key, value) in entries {
        match key.value.as_str() {
            "resources" => {
                let Kind::Seq(items) = &value.kind else {
                    return Err(source
                        .error(value.pos, "`resources` must be a list of paths")
                        .into());
                };
                for item in items {
                    let Kind::String(rel) = &item.kind else {
                        return Err(source.error(item.pos, "a resource must be a path").into());
                    };
                    let p = dir.join(rel);
                    if std::fs::symlink_metadata(&p).is_err() {
                        return Err(source
                            .error(item.pos, format!("resource `{rel}` does not exist"))
                            .hint("fix the path; it is relative to the kustomization file")
                            .into());
                    }
                    match root.kind(&p)? {
                        PathKind::Dir => {
                            let Some(k) = kustomization_file(&p) else {
                                return Err(source.error(item.pos, format!("`{rel}` is a directory without a kustomization file")).hint("kustomize needs a kustomization.yaml in every directory it reads").into());
                            };
                            load_kustomization(&k, root, objects, depth + 1)?;
                        }
                        PathKind::File => load_file(&p, root, objects)?,
                    }
                }
            }
            "namespace" => {
                if let Kind::String(ns) = &value.kind {
                    namespace = Some(ns.clone());
                }
            }
            other if KUSTOMIZATION_FIELDS.contains(&other) => {}
            other => {
                return Err(source
                    .error(Pos::of(key), format!("the base kustomization uses `{other}`, which canaryplan cannot reproduce in the final stream"))
                    .hint("keep the base to `resources` and `namespace`, and move other transformers to an overlay on top of canaryplan's output")
                    .into());
            }
        }
    }
    if let Some(ns) = namespace {
        for o in objects.iter_mut().skip(first) {
            if let Some(meta) = o.value.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
        }
    }
    Ok(())
}

fn load_file(path: &Path, root: &Root, objects: &mut Vec<BaseObject>) -> Result<()> {
    let source = Source::read(path, root)?;
    for (i, doc) in yaml::parse_values(&source)?.into_iter().enumerate() {
        if !doc.is_null() {
            objects.push(object(&source, i, doc)?);
        }
    }
    Ok(())
}

/// Where `path` is in document `document` of `source` (parsing it again, with positions).
pub fn locate(source: &Source, document: usize, path: &[&str]) -> Pos {
    yaml::parse_documents(source)
        .ok()
        .and_then(|docs| docs.get(document).map(|d| d.pos_of(path)))
        .unwrap_or_default()
}

fn object(source: &Arc<Source>, document: usize, value: Value) -> Result<BaseObject> {
    let at = |path: &[&str]| locate(source, document, path);
    if !value.is_object() {
        return Err(source
            .error(
                at(&[]),
                "a manifest must be a mapping with apiVersion, kind and metadata",
            )
            .into());
    }
    let field = |path: &str| value.at(path).and_then(Value::as_str).map(str::to_string);
    let require = |path: &str, parts: &[&str], what: &str| {
        field(path).filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::from(
                source
                    .error(at(parts), format!("this manifest has no {what}"))
                    .hint("every Kubernetes object needs apiVersion, kind and metadata.name"),
            )
        })
    };
    let api_version = require("/apiVersion", &["apiVersion"], "apiVersion")?;
    let kind = require("/kind", &["kind"], "kind")?;
    let name = require("/metadata/name", &["metadata", "name"], "metadata.name")?;
    if kind.ends_with("List") {
        return Err(source
            .error(
                at(&["kind"]),
                format!("`{kind}` objects are not supported in a base"),
            )
            .hint("list the items as separate YAML documents")
            .into());
    }
    Ok(BaseObject {
        value,
        document,
        source: Arc::clone(source),
        api_version,
        kind,
        name,
    })
}
