//! `init`: a starter plan from a base directory. It finds the Service, the Deployment it
//! selects and the VirtualService routing to it, proposes labels that keep the selectors
//! disjoint, and says in comments what to fill in. The result validates as written.

use crate::pointer::Pointer as _;
use std::path::Path;

use serde_json::Value;

use crate::base::{self, Base, BaseObject};
use crate::error::{Diagnostic, Result};
use crate::names;
use crate::output::overlay::relative;
use crate::plan_file::Labels;
use crate::selector;

/// Which app of a multi-app base to start the plan for.
#[derive(Debug, Default, Clone)]
pub struct Pick {
    pub service: Option<String>,
    pub workload: Option<String>,
}

/// Where `init` writes the plan: a new file in a directory inside the repository of what it
/// reads, checked before anything is read and created only if nothing is there when written.
pub struct Target {
    dir: crate::fsio::WriteDir,
    name: String,
}

const EXISTS: &str = "a plan already exists here; canaryplan init does not overwrite it";
const EXISTS_HINT: &str = "remove it first, or choose another path with --output";

/// The target `plan_path` for a plan made from `sources` (the base, or the Rollout's folder):
/// refused when anything is there (a file, or a link, even a dangling one) or when it is
/// outside the repository `sources` belong to.
pub fn target(sources: &Path, plan_path: &Path) -> Result<Target> {
    use crate::fsio::Entry;
    let root = crate::fsio::Root::of_sources(sources)?;
    let Some(name) = plan_path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
    else {
        return Err(Diagnostic::new("is not a file name")
            .in_file(plan_path)
            .hint("name the plan file with --output, e.g. --output canaryplan.yaml")
            .into());
    };
    let dir = root
        .open_dir(plan_path.parent().unwrap_or(Path::new("")), false)
        .map_err(|mut e| {
            if let Some(d) = e.diagnostics.first_mut()
                && d.message == "does not exist"
            {
                d.hint =
                    Some("create the directory first, or choose another path with --output".into());
            }
            e
        })?;
    match dir.entry(&name)? {
        Entry::Missing => Ok(Target { dir, name }),
        Entry::File(_) => Err(Diagnostic::new(EXISTS)
            .in_file(plan_path)
            .hint(EXISTS_HINT)
            .into()),
        Entry::Link(to) => Err(Diagnostic::new(format!(
            "is a symbolic link to {}; canaryplan init never writes through a link, even one to nothing",
            to.display()
        ))
        .in_file(plan_path)
        .hint("remove the link, or choose another path with --output")
        .into()),
        Entry::Dir => Err(Diagnostic::new("is a directory, not a place for a plan")
            .in_file(plan_path)
            .hint("name the plan file with --output, e.g. --output canaryplan.yaml")
            .into()),
        Entry::Other(what) => Err(Diagnostic::new(format!("is {what}, not a place for a plan"))
            .in_file(plan_path)
            .hint(EXISTS_HINT)
            .into()),
    }
}

impl Target {
    /// Creates the plan with `text`, atomically, unless something appeared there meanwhile.
    pub fn write(&self, text: &str) -> Result<()> {
        self.dir.write(
            &self.name,
            text.as_bytes(),
            crate::fsio::Existing::Nothing {
                refusal: EXISTS,
                hint: EXISTS_HINT,
            },
        )
    }
}

/// The text of a starter plan for the base at `base_dir`, to be written at `plan_path`. What
/// it reads stays inside the repository of the base (`Root::of_sources`).
pub fn starter(base_dir: &Path, plan_path: &Path, pick: &Pick) -> Result<String> {
    let root = crate::fsio::Root::of_sources(base_dir)?;
    let base = base::load(base_dir, &root)?;
    // An Istio gateway or a cluster with revision tags is upgraded with a mesh upgrade kind.
    if pick.service.is_none()
        && pick.workload.is_none()
        && let Some(t) = mesh_starter(&base, base_dir, plan_path)
    {
        return Ok(t);
    }
    let (service, workload) = app(&base, base_dir, pick)?;
    let routing = Routing::of(&base, service);
    let selector_labels = selector::labels_of(workload.value.at("/spec/selector/matchLabels"));
    let Some((key, value)) = selector_labels.first() else {
        return Err(workload
            .error(
                &["spec", "selector"],
                format!("Deployment {} has no selector.matchLabels", workload.name),
            )
            .hint("canaryplan makes the copy's selector disjoint through matchLabels")
            .into());
    };
    let image = workload
        .value
        .at("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or("registry.example/app@sha256:...");
    let service_selector = selector::labels_of(service.value.at("/spec/selector"));
    let plan_dir = plan_path.parent().unwrap_or(Path::new(""));
    let base_rel = relative(plan_dir, base_dir).unwrap_or_else(|| base_dir.display().to_string());
    let name = if names::is_dns_label(&service.name) {
        service.name.clone()
    } else {
        "my-app".to_string()
    };

    let mut t = String::new();
    t.push_str(&format!(
        "# A canary plan generated by `canaryplan init` from {base_rel}/. Review every value,\n"
    ));
    t.push_str("# then run `canaryplan validate` and `canaryplan render`.\n");
    t.push_str("apiVersion: canaryplan.io/v1alpha1\nkind: CanaryPlan\nmetadata:\n");
    t.push_str(&format!("  name: {}\n", q(&name)));
    t.push_str("spec:\n");
    t.push_str(&format!("  base: {}\n", q(&base_rel)));
    t.push_str(&format!("  # The Service that receives the traffic, and the Deployment it selects.\n  service: {}\n  workload: {}\n", q(&service.name), q(&workload.name)));
    routing.write(&mut t);
    // One Deployment per version (the version label in its selector): the canary is a new
    // Deployment beside it, and the Service already selects both.
    if let Some(stable) = selector_labels.get("version") {
        versioned_spec(&mut t, &base, &service_selector, stable, image);
    } else {
        let labels = CopyLabels {
            key,
            value,
            service_selector: &service_selector,
            pod_labels: &selector::labels_of(workload.value.at("/spec/template/metadata/labels")),
        };
        copy_spec(&mut t, workload, &name, &labels, image, routing.gateway_api);
    }
    Ok(t)
}

/// A string as a YAML scalar.
fn q(s: &str) -> String {
    crate::yaml::to_yaml(&Value::String(s.to_string()))
        .trim_end()
        .to_string()
}

/// The app of the base: the one Service that selects a Deployment's pods, and that
/// Deployment (narrowed by `--service` and `--workload`).
fn app<'b>(
    base: &'b Base,
    base_dir: &Path,
    pick: &Pick,
) -> Result<(&'b BaseObject, &'b BaseObject)> {
    let pairs: Vec<(&BaseObject, &BaseObject)> = base
        .of_kind("Service")
        .filter(|s| pick.service.as_ref().is_none_or(|n| *n == s.name))
        .flat_map(|svc| {
            let sel = selector::labels_of(svc.value.at("/spec/selector"));
            base.of_kind("Deployment")
                .filter(move |d| {
                    selector::map_matches(
                        &sel,
                        &selector::labels_of(d.value.at("/spec/template/metadata/labels")),
                    )
                })
                .map(move |d| (svc, d))
        })
        .filter(|(_, d)| pick.workload.as_ref().is_none_or(|n| *n == d.name))
        .collect();
    match pairs.as_slice() {
        [one] => Ok(*one),
        [] => {
            let what = match (&pick.service, &pick.workload) {
                (None, None) => {
                    "found no Service that selects a Deployment's pods in the base".to_string()
                }
                (Some(s), None) => {
                    format!("found no Service `{s}` that selects a Deployment's pods in the base")
                }
                (None, Some(w)) => format!(
                    "found no Service that selects the pods of Deployment `{w}` in the base"
                ),
                (Some(s), Some(w)) => format!(
                    "Service `{s}` does not select the pods of Deployment `{w}` in the base"
                ),
            };
            Err(Diagnostic::new(what)
                .in_file(base_dir)
                .hint(
                    "the base needs the Service that receives the traffic and the Deployment behind it",
                )
                .into())
        }
        many => {
            let mut services: Vec<&str> = many.iter().map(|(s, _)| s.name.as_str()).collect();
            services.dedup();
            let (message, hint) = if let [one] = services.as_slice() {
                let deployments: Vec<&str> = many.iter().map(|(_, d)| d.name.as_str()).collect();
                (
                    format!("Service {one} selects the pods of {} Deployments: {}", deployments.len(), deployments.join(", ")),
                    "choose the one running the stable version with `--workload`; with one Deployment per version the plan uses `method: versioned`".to_string(),
                )
            } else {
                let list: Vec<String> = many
                    .iter()
                    .map(|(s, d)| format!("Service {} → Deployment {}", s.name, d.name))
                    .collect();
                (
                    format!(
                        "found several Services with Deployments: {}",
                        list.join(", ")
                    ),
                    "choose the app with `--service` (and `--workload`)".to_string(),
                )
            };
            Err(Diagnostic::new(message).in_file(base_dir).hint(hint).into())
        }
    }
}

/// How the base routes to the app's Service.
struct Routing<'b> {
    /// The VirtualServices with a route to the Service.
    virtual_services: Vec<&'b BaseObject>,
    /// The HTTPRoutes with a backendRef to the Service (or a Service of one of its versions).
    http_routes: Vec<&'b BaseObject>,
    /// HTTPRoutes and no VirtualService: the plan routes with Gateway API.
    gateway_api: bool,
    /// An HTTPRoute serves mesh callers (a parent is a Service).
    gamma: bool,
}

impl<'b> Routing<'b> {
    fn of(base: &'b Base, service: &BaseObject) -> Routing<'b> {
        let virtual_services: Vec<&BaseObject> = base
            .of_kind("VirtualService")
            .filter(|vs| {
                !crate::rendered::routes_to(&vs.value, |h| crate::rendered::is_host_of(service, h))
                    .is_empty()
            })
            .collect();
        // HTTPRoutes with a backendRef to the Service (or to a Service of one of its versions,
        // `<service>-<version>`): with no VirtualService for it, the plan routes with Gateway API.
        let names_service = |b: &Value| {
            b.get("name").and_then(Value::as_str).is_some_and(|n| {
                n == service.name
                    || (n.starts_with(&format!("{}-", service.name))
                        && base.find("Service", n).is_some())
            }) && b
                .get("kind")
                .and_then(Value::as_str)
                .is_none_or(|k| k == "Service")
        };
        let http_routes: Vec<&BaseObject> = base
            .of_kind("HTTPRoute")
            .filter(|hr| crate::rendered::http_route_backend_refs(&hr.value).any(names_service))
            .collect();
        let gateway_api = virtual_services.is_empty() && !http_routes.is_empty();
        let gamma = http_routes.iter().any(|hr| {
            hr.value
                .at("/spec/parentRefs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|p| p.get("kind").and_then(Value::as_str) == Some("Service"))
        });
        Routing {
            virtual_services,
            http_routes,
            gateway_api,
            gamma,
        }
    }

    /// The plan's routing lines: `traffic: gateway-api` (and the mesh route offered), or the
    /// VirtualServices it patches.
    fn write(&self, t: &mut String) {
        let (gateway_api, gamma, http_routes) = (self.gateway_api, self.gamma, &self.http_routes);
        if gateway_api {
            t.push_str(&format!(
                "  # The base routes with the Gateway API: HTTPRoute {} send(s) to the Service; their rules
  # are split between the Services of each version.
  traffic: gateway-api
",
                http_routes.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
            if !gamma {
                t.push_str(
                    "  # No route of base serves mesh callers (a GAMMA route, parent = the Service):
  # uncomment to add one, weighted like the others.
  # meshRoute: generate
",
                );
            }
        }
        match self.virtual_services.as_slice() {
            _ if gateway_api => {}
            [vs] => t.push_str(&format!("  # The VirtualService routing to the Service; its routes are split by version.\n  virtualService: {}\n", q(&vs.name))),
            [] => t.push_str("  # The base has no VirtualService for the Service: one is generated for the mesh host.\n"),
            many => t.push_str(&format!(
                "  # Every VirtualService routing to the Service is patched alike: {}.\n",
                many.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

/// The rest of a `method: versioned` plan: the canary a new Deployment, named with the first
/// version no Deployment of this app uses yet.
fn versioned_spec(
    t: &mut String,
    base: &Base,
    service_selector: &Labels,
    stable: &str,
    image: &str,
) {
    // Versions of this app only: other apps' Deployments (bookinfo's reviews-v3 beside
    // productpage-v1) do not take a version name from it.
    let taken = |v: &str| {
        base.of_kind("Deployment").any(|d| {
            let pods = selector::labels_of(d.value.at("/spec/template/metadata/labels"));
            selector::map_matches(service_selector, &pods)
                && pods.get("version").map(String::as_str) == Some(v)
        })
    };
    let canary = (2..100)
        .map(|n| format!("v{n}"))
        .find(|v| !taken(v))
        .unwrap_or_else(|| "canary".to_string());
    t.push_str("  # One Deployment per version: the canary is a new Deployment beside this one.\n  method: versioned\n");
    t.push_str(&format!("  stable:\n    version: {}\n", q(stable)));
    t.push_str(&format!(
        "  canary:\n    version: {}   # no Deployment behind the Service uses it yet\n",
        q(&canary)
    ));
    t.push_str(
        "    # FILL IN: the new version's image, pinned by digest (registry/app@sha256:...).\n",
    );
    t.push_str(&format!(
        "    # Prefilled with the stable image.\n    image: {}\n",
        q(image)
    ));
    t.push_str("  # Sources allowed to reach the canary Deployment, e.g. the ingress gateway:\n");
    t.push_str("  # allowFrom:\n  # - {namespace: istio-system, serviceAccount: istio-ingressgateway-service-account}\n");
    t.push_str("  steps: [1, 5, 25, 50, 100]\n");
    t.push_str("  environments:\n    staging:\n      stage: prepare\n");
}

/// The labels a copy plan starts from: the workload's first selector label, the Service's
/// selector, the workload's pod labels.
struct CopyLabels<'l> {
    key: &'l str,
    value: &'l str,
    service_selector: &'l Labels,
    pod_labels: &'l Labels,
}

/// The rest of a plan whose stable version is a copy of the workload: the copy's selector
/// label, the pod labels and (Istio) the Service selector both versions share.
fn copy_spec(
    t: &mut String,
    workload: &BaseObject,
    name: &str,
    labels: &CopyLabels<'_>,
    image: &str,
    gateway_api: bool,
) {
    let &CopyLabels {
        key,
        value,
        service_selector,
        pod_labels,
    } = labels;
    let copy_value = format!("{value}-v1");
    let copy_value = if names::is_label_value(&copy_value) {
        copy_value
    } else {
        "stable-v1".to_string()
    };
    // A label only this app's pods carry, so the patched Service selector cannot reach other
    // apps' pods in a shared namespace.
    let app_label = pod_labels
        .get("applicationName")
        .cloned()
        .unwrap_or_else(|| name.to_string());
    // Only the Istio backend's Service selector patch selects by them; Gateway API routes
    // name a Service per version instead.
    if !gateway_api {
        t.push_str(&format!(
            "  podLabels: {{canary: enabled, applicationName: {}}}   # on the pods of both versions\n",
            q(&app_label)
        ));
    }
    t.push_str("  stable:\n    version: v1\n");
    t.push_str(
        "    # FILL IN: the image stable runs today, pinned by digest (registry/app@sha256:...).\n",
    );
    t.push_str(&format!(
        "    # Prefilled with the base's current image.\n    image: {}\n",
        q(image)
    ));
    t.push_str(&format!(
        "    # The copy's selector must not match {}'s pods: it gets {key}={copy_value} instead of {value}.\n    labels: {{{}: {}}}\n",
        workload.name,
        q(key),
        q(&copy_value)
    ));
    t.push_str("  canary:\n    version: v2\n");
    if !gateway_api {
        t.push_str("  # While both versions serve, the Service selects them by the labels they share,\n  # including one only this app's pods carry.\n  selector:\n");
        if service_selector.contains_key(key) {
            t.push_str(&format!("    remove: [{}]\n", q(key)));
        }
        t.push_str(&format!(
            "    add: {{canary: enabled, applicationName: {}}}\n",
            q(&app_label)
        ));
    }
    t.push_str("  # Sources allowed to reach the stable copy, e.g. the ingress gateway:\n");
    t.push_str("  # allowFrom:\n  # - {namespace: istio-system, serviceAccount: istio-ingressgateway-service-account}\n");
    t.push_str("  steps: [1, 5, 25, 50, 100]\n");
    t.push_str("  environments:\n    staging:\n      stage: prepare\n");
}

/// The mesh upgrade `init` proposes for a base, if it is one: a cluster base with revision tags
/// and injected namespaces → a RevisionUpgrade; a base with an injected gateway → a
/// GatewayUpgrade.
fn mesh_starter(base: &Base, base_dir: &Path, plan_path: &Path) -> Option<String> {
    let plan_dir = plan_path.parent().unwrap_or(Path::new(""));
    let base_rel = relative(plan_dir, base_dir).unwrap_or_else(|| base_dir.display().to_string());
    crate::kinds::revision_upgrade::init::starter(base, &base_rel)
        .or_else(|| crate::kinds::gateway_upgrade::init::starter(base, &base_rel))
}
