//! Manifest shapes for new resources, as minijinja templates. Values are emitted through JSON
//! escaping (JSON is YAML), the result is parsed back and its identity checked, so a template
//! can add labels or annotations but never break or rename an object. Users can point
//! `--templates DIR` at their own copies; templates see only that directory's known files,
//! run on a fuel budget and fail on undefined values.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::Value;

use crate::error::{Diagnostic, Error, Result};
use crate::yaml::{self, Source};

/// The templates canaryplan renders, with the built-in text of each.
pub const BUILTIN: [(&str, &str); 6] = [
    (
        "stable-copy.yaml.j2",
        include_str!("../templates/stable-copy.yaml.j2"),
    ),
    (
        "destination-rule.yaml.j2",
        include_str!("../templates/destination-rule.yaml.j2"),
    ),
    (
        "virtual-service.yaml.j2",
        include_str!("../templates/virtual-service.yaml.j2"),
    ),
    (
        "authorization-policy.yaml.j2",
        include_str!("../templates/authorization-policy.yaml.j2"),
    ),
    (
        "version-service.yaml.j2",
        include_str!("../templates/version-service.yaml.j2"),
    ),
    (
        "http-route.yaml.j2",
        include_str!("../templates/http-route.yaml.j2"),
    ),
];

/// Work one template may do, in minijinja fuel units: generous for any manifest, small
/// enough that a runaway loop stops at once.
const FUEL: u64 = 200_000;

pub struct Templates {
    env: Environment<'static>,
    /// Where each template came from, for error messages.
    origins: Vec<(String, PathBuf)>,
}

/// What a rendered template must be.
pub struct Identity<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

impl Templates {
    pub fn builtin() -> Templates {
        Templates::with(|_| None).unwrap_or_else(|_| Templates {
            env: Environment::new(),
            origins: Vec::new(),
        })
    }

    /// Templates from `dir`, falling back to the built-in one for each file not there.
    pub fn from_dir(dir: &Path) -> Result<Templates> {
        if !dir.is_dir() {
            return Err(Diagnostic::new("the templates directory does not exist")
                .in_file(dir)
                .hint("point --templates at a directory holding copies of canaryplan's templates/")
                .into());
        }
        // Templates come from the repository too (the hook's arguments are the repository's):
        // they are read inside the root of the directory canaryplan runs in.
        let root = crate::fsio::Root::discover(Path::new("."))?;
        let mut sources = Vec::new();
        for (name, _) in BUILTIN {
            let p = dir.join(name);
            if std::fs::symlink_metadata(&p).is_ok() {
                sources.push((name, p.clone(), Source::read(&p, &root)?));
            }
        }
        Templates::with(|name| {
            sources
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, p, s)| (p.clone(), s.text.clone()))
        })
    }

    fn with(custom: impl Fn(&str) -> Option<(PathBuf, String)>) -> Result<Templates> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Json);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(32);
        let mut origins = Vec::new();
        for (name, text) in BUILTIN {
            let (origin, text) = custom(name)
                .unwrap_or_else(|| (PathBuf::from("templates").join(name), text.to_string()));
            env.add_template_owned(name.to_string(), text)
                .map_err(|e| template_error(&origin, &e))?;
            origins.push((name.to_string(), origin));
        }
        Ok(Templates { env, origins })
    }

    fn origin(&self, name: &str) -> PathBuf {
        self.origins
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| PathBuf::from(name))
    }

    /// Renders `name` with `context`, parses the result and checks it is the expected object.
    pub fn render(&self, name: &str, context: &Value, expect: &Identity<'_>) -> Result<Value> {
        self.render_with(name, context, Vec::new(), expect)
    }

    /// As `render`, with `opaque` values that the template places but does not look into
    /// (`{{ spec }}`): they reach the template as a marker and are put in place after the
    /// output is parsed, so a large value is neither converted for the template engine nor
    /// parsed back. A template may leave one out, not change it.
    pub fn render_with(
        &self,
        name: &str,
        context: &Value,
        opaque: Vec<(&str, Value)>,
        expect: &Identity<'_>,
    ) -> Result<Value> {
        let origin = self.origin(name);
        let mut context = context.clone();
        let mut markers = Vec::with_capacity(opaque.len());
        for (key, value) in opaque {
            let marker = format!("{OPAQUE_MARKER}{key}");
            if let Some(c) = context.as_object_mut() {
                c.insert(key.to_string(), Value::String(marker.clone()));
            }
            markers.push((marker, value));
        }
        let text = self
            .env
            .get_template(name)
            .and_then(|t| t.render(minijinja::value::Serde(&context)))
            .map_err(|e| template_error(&origin, &e))?;
        let shown = PathBuf::from(format!("{} (rendered)", origin.display()));
        let source = Source::from_text(&shown, text);
        let mut docs = yaml::parse_values(&source)?;
        let (Some(mut value), true) = (docs.pop(), docs.is_empty()) else {
            return Err(Diagnostic::new(format!(
                "rendered {} documents, expected one {}",
                docs.len() + 1,
                expect.kind
            ))
            .in_file(&origin)
            .into());
        };
        let field = |p: &str| value.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let wrong = [
            ("apiVersion", field("/apiVersion"), expect.api_version),
            ("kind", field("/kind"), expect.kind),
            ("metadata.name", field("/metadata/name"), expect.name),
        ]
        .into_iter()
        .find(|(_, got, want)| got != want);
        if let Some((what, got, want)) = wrong {
            return Err(Diagnostic::new(format!(
                "the template renders {what} `{got}`, expected `{want}`"
            ))
            .in_file(&origin)
            .hint("a template may add fields, but not change an object's apiVersion, kind or name")
            .into());
        }
        if !markers.is_empty() {
            put_opaque(&mut value, &mut markers);
        }
        Ok(value)
    }
}

/// Marks an opaque value in a template's context.
const OPAQUE_MARKER: &str = "canaryplan.io/opaque:";

fn put_opaque(v: &mut Value, markers: &mut Vec<(String, Value)>) {
    match v {
        Value::String(s) if s.starts_with(OPAQUE_MARKER) => {
            if let Some(i) = markers.iter().position(|(m, _)| m == s) {
                let (_, value) = markers.swap_remove(i);
                *v = value;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| put_opaque(x, markers)),
        Value::Object(map) => map.values_mut().for_each(|x| put_opaque(x, markers)),
        _ => {}
    }
}

fn template_error(origin: &Path, e: &minijinja::Error) -> Error {
    let file = Arc::new(origin.to_path_buf());
    let mut d = Diagnostic::new(format!(
        "template error: {}",
        e.detail().unwrap_or(&e.kind().to_string())
    ))
    .hint(
        "fix the template; values are available as documented at the top of each built-in template",
    );
    match e.line() {
        Some(line) => d.location = Some(crate::error::Location::new(&file, line as u64, 1)),
        None => d.file = Some(origin.to_path_buf()),
    }
    d.into()
}
