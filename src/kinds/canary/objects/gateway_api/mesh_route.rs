//! `meshRoute: generate`: a GAMMA HTTPRoute whose parent is the Service itself, so callers
//! inside the mesh get the same weights, test rules and mirror as the routes of base. One
//! route per Service port when it has several (a backendRef names one port).

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use super::http_routes::backends;
use super::{mirror, test_rules};
use crate::error::Result;
use crate::kinds::canary::objects::{Context, Rendered};
use crate::kinds::canary::stage::Routing;

/// The name of the generated route (for `port`, when the Service has several).
pub fn name(cx: &Context<'_>, port: Option<u64>) -> String {
    match port {
        Some(p) => format!("{}-mesh-{p}", cx.service.name),
        None => format!("{}-mesh", cx.service.name),
    }
}

fn is_gamma_parent_of_service(cx: &Context<'_>, hr_ns: Option<&str>, p: &Value) -> bool {
    let s = |k: &str| p.get(k).and_then(Value::as_str);
    s("kind") == Some("Service") && s("name") == Some(cx.service.name.as_str()) && {
        let ns = s("namespace").or(hr_ns);
        ns == cx.service.namespace() || ns.is_none() || cx.service.namespace().is_none()
    }
}

/// With `meshRoute: generate`, a GAMMA route of base for the Service would compete with the
/// generated one (two routes for one parent): refused, with where it is.
pub fn refuse_a_second_mesh_route(cx: &Context<'_>) -> Result<()> {
    let Some(pos) = cx.plan.mesh_route else {
        return Ok(());
    };
    for hr in cx.base.of_kind("HTTPRoute") {
        let gamma = hr
            .value
            .at("/spec/parentRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|p| is_gamma_parent_of_service(cx, hr.namespace(), p));
        if gamma {
            return Err(cx
                .plan
                .diag(pos, format!("HTTPRoute {} of base already routes mesh callers of Service {} (its parent is the Service)", hr.name, cx.service.name))
                .hint("remove `meshRoute: generate`: canaryplan weights that HTTPRoute like the others")
                .into());
        }
    }
    Ok(())
}

pub fn render(cx: &Context<'_>, routing: Routing, out: &mut Rendered) -> Result<()> {
    if cx.plan.mesh_route.is_none() {
        return Ok(());
    }
    let ports: Vec<u64> = cx
        .service_ports()
        .iter()
        .filter(|p| {
            p.get("protocol")
                .and_then(Value::as_str)
                .is_none_or(|p| p == "TCP")
        })
        .filter_map(|p| p.get("port").and_then(Value::as_u64))
        .collect();
    let several = ports.len() > 1;
    for port in ports {
        let name = name(cx, several.then_some(port));
        if cx.base.find("HTTPRoute", &name).is_some() {
            return Err(cx
                .plan
                .diag(cx.plan.mesh_route.unwrap_or_default(), format!("the base has an HTTPRoute `{name}`, the name of the mesh route canaryplan generates"))
                .hint("rename that HTTPRoute in base, or remove `meshRoute: generate`")
                .into());
        }
        let mut parent = json!({"group": "", "kind": "Service", "name": cx.service.name});
        if several && let Some(o) = parent.as_object_mut() {
            o.insert("port".into(), json!(port));
        }
        let to_service = vec![json!({"name": cx.service.name, "port": port})];
        let mut main = json!({
            "backendRefs": backends(cx, &to_service, cx.service.namespace(), routing, None)?,
        });
        if let Some(p) = cx.mirror_percent()
            && let Some(o) = main.as_object_mut()
        {
            o.insert(
                "filters".into(),
                json!([mirror::mirror_filter(cx, p, Some(json!(port)))]),
            );
        }
        let mut rules = Vec::new();
        let base_rule = json!({"backendRefs": to_service});
        if let Some(test) = test_rules::rule(cx, &name, cx.service.namespace(), &[base_rule], 0)? {
            rules.push(test);
        }
        rules.push(main);
        out.resources.push(cx.new_resource(
            "http-route.yaml.j2",
            ("gateway.networking.k8s.io/v1", "HTTPRoute"),
            &name,
            json!({"parent_refs": [parent], "rules": rules}),
            Vec::new(),
            format!(
                "mesh callers of Service {} (port {port}) weighted like the routes of base",
                cx.service.name
            ),
        )?);
    }
    Ok(())
}
