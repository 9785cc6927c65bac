//! Manifest shapes for new resources, as minijinja templates. Values are emitted through JSON
//! escaping (JSON is YAML), the result is parsed back and its identity checked, so a template
//! can add labels or annotations but never break or rename an object. Users can point
//! `--templates DIR` at their own copies; templates see only that directory's known files,
//! run on a fuel budget and fail on undefined values.

use crate::pointer::Pointer as _;
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
    /// The objects rendered last, by template and context: a plan's environments render the
    /// same stable copy and policies, and rendering a template then parsing its YAML costs
    /// as much as the rest of an environment's objects together.
    recent: std::sync::Mutex<std::collections::VecDeque<(String, Value)>>,
    /// For each template (in `BUILTIN`'s order), the context variables it reads, once known:
    /// two contexts that agree on them render the same object. `None`: the template may read
    /// more than it names (it includes, imports or extends another, calls `debug()`, or names
    /// nothing found), so the whole context counts.
    reads: [std::sync::OnceLock<Option<Vec<String>>>; BUILTIN.len()],
    /// Which templates rendered once already: finding what a template reads costs a parse of
    /// its source, paid from its second render on (one environment's render never pays it).
    rendered: [std::sync::atomic::AtomicBool; BUILTIN.len()],
}

/// How many rendered objects `Templates::recent` keeps: a plan renders a few per environment,
/// and the plans rendered meanwhile on other cores add theirs.
const RECENT: usize = 16;

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
            recent: Default::default(),
            reads: Default::default(),
            rendered: Default::default(),
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
        Ok(Templates {
            env,
            origins,
            recent: Default::default(),
            reads: Default::default(),
            rendered: Default::default(),
        })
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
        // The template sees only `context` (opaque values are markers in it): the same
        // template and the same values of the variables it reads render the same object.
        let index = BUILTIN.iter().position(|(n, _)| *n == name);
        let again = index
            .and_then(|i| self.rendered.get(i))
            .is_some_and(|r| r.swap(true, std::sync::atomic::Ordering::Relaxed));
        let key = again.then(|| {
            format!(
                "{name}\n{}",
                serde_json::to_string(&self.read_by(index, &context)).unwrap_or_default()
            )
        });
        if let Some(mut value) = key.as_deref().and_then(|k| self.recall(k)) {
            if !markers.is_empty() {
                put_opaque(&mut value, &mut markers);
            }
            return Ok(value);
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
        let field = |p: &str| value.at(p).and_then(Value::as_str).unwrap_or_default();
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
        if let Some(key) = key {
            self.remember(key, &value);
        }
        if !markers.is_empty() {
            put_opaque(&mut value, &mut markers);
        }
        Ok(value)
    }

    /// What of `context` the template at `index` in `BUILTIN` reads.
    fn read_by(&self, index: Option<usize>, context: &Value) -> Value {
        let reads = index
            .and_then(|i| Some((self.reads.get(i)?, BUILTIN.get(i)?.0)))
            .and_then(|(cell, name)| {
                cell.get_or_init(|| {
                    let t = self.env.get_template(name).ok()?;
                    let source = t.source();
                    // Names read through another template are not among this one's, and
                    // `debug()` prints the whole context.
                    if ["include", "import", "extends", "debug"]
                        .iter()
                        .any(|w| source.contains(w))
                    {
                        return None;
                    }
                    let mut vars: Vec<String> = t.undeclared_variables(false).into_iter().collect();
                    vars.sort();
                    // A template that reads nothing found may still read something.
                    (!vars.is_empty()).then_some(vars)
                })
                .as_ref()
            });
        match (reads, context.as_object()) {
            (Some(vars), Some(all)) => Value::Object(
                vars.iter()
                    .map(|v| (v.clone(), all.get(v).cloned().unwrap_or(Value::Null)))
                    .collect(),
            ),
            _ => context.clone(),
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(String, Value)>> {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The object last rendered under `key` (template and context), if still kept.
    fn recall(&self, key: &str) -> Option<Value> {
        self.recent()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn remember(&self, key: String, value: &Value) {
        let mut recent = self.recent();
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((key, value.clone()));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn context(environment: &str, name: &str) -> Value {
        json!({
            "name": name, "namespace": "shop", "plan": "shop", "environment": environment,
            "stage": "shift", "match_labels": {"app": "web"}, "principals": ["a/b"],
            "workload": "web",
        })
    }

    fn policy(t: &Templates, cx: &Value, name: &str) -> Value {
        let expect = Identity {
            api_version: "security.istio.io/v1",
            kind: "AuthorizationPolicy",
            name,
        };
        t.render("authorization-policy.yaml.j2", cx, &expect)
            .unwrap()
    }

    /// Environments that differ only where a template does not look render one object (kept
    /// and reused); a difference the template reads renders anew.
    #[test]
    fn an_object_is_reused_only_for_the_same_values_its_template_reads() {
        let t = Templates::builtin();
        let staging = policy(&t, &context("staging", "p"), "p");
        assert_eq!(policy(&t, &context("production", "p"), "p"), staging);
        assert_eq!(policy(&t, &context("qa", "p"), "p"), staging);
        assert_eq!(
            t.recent.lock().unwrap().len(),
            1,
            "rendered once, reused after"
        );
        let other = policy(&t, &context("qa", "q"), "q");
        assert_eq!(other["metadata"]["name"], "q");

        // A template that reads the environment renders each one.
        let custom = Templates::with(|name| {
            (name == "authorization-policy.yaml.j2").then(|| {
                let text = BUILTIN[3].1.replace(
                    "metadata:\n",
                    "metadata:\n  labels: {env: {{ environment }}}\n",
                );
                (PathBuf::from("t/authorization-policy.yaml.j2"), text)
            })
        })
        .unwrap();
        for env in ["staging", "production", "staging", "qa", "production"] {
            let p = policy(&custom, &context(env, "p"), "p");
            assert_eq!(p["metadata"]["labels"]["env"], env);
        }

        // `debug()` reads the whole context without naming a variable.
        let dumps = Templates::with(|name| {
            (name == "authorization-policy.yaml.j2").then(|| {
                let text = BUILTIN[3].1.replace(
                    "metadata:\n",
                    "metadata:\n  annotations: {state: {{ debug() | tojson }}}\n",
                );
                (PathBuf::from("t/authorization-policy.yaml.j2"), text)
            })
        })
        .unwrap();
        for env in ["staging", "production", "staging", "qa"] {
            let p = policy(&dumps, &context(env, "p"), "p");
            let state = p["metadata"]["annotations"]["state"].as_str().unwrap();
            assert!(state.contains(env), "{state}");
        }
    }
}
