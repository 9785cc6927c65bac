//! The mesh VirtualService canaryplan generates when base has none for the Service: one http
//! route to the Service host, weighted between the subsets, with the test route before it and
//! the mirror on it (both added in code, so a custom template cannot drop them).

use crate::pointer::Pointer as _;
use serde_json::{Value, json};

use crate::error::Result;
use crate::kinds::canary::objects::{Context, Rendered};
use crate::kinds::canary::stage::Routing;

pub fn render(
    cx: &Context<'_>,
    routing: Routing,
    hosts: &[&str],
    out: &mut Rendered,
) -> Result<()> {
    let name = cx.service.name.clone();
    let ports = cx.service_ports().len();
    if ports > 1 {
        return Err(cx
            .plan
            .diag(cx.plan.service.pos, format!("Service {name} has {ports} ports and the base has no VirtualService for it"))
            .hint("add a VirtualService with a route per port to base; canaryplan then splits its routes")
            .into());
    }
    if let Some(p) = cx.plan.ports.first() {
        return Err(cx
            .plan
            .diag(
                p.pos,
                format!(
                    "`ports` selects tcp/tls routes, and the base has no VirtualService for {}",
                    cx.host
                ),
            )
            .hint("add a VirtualService with the tcp/tls routes to base, or remove `ports`")
            .into());
    }
    let mut all_hosts = vec![cx.host.as_str()];
    all_hosts.extend(hosts.iter().filter(|h| **h != cx.host));
    let only = |subset: &str| json!([{"destination": {"host": cx.host, "subset": subset}}]);
    let route = match routing {
        Routing::Split(w) => {
            let d = |v: &str, w: u8| json!({"destination": {"host": cx.host, "subset": v}, "weight": w});
            json!([
                d(&cx.plan.stable.subset.value, w.stable),
                d(&cx.plan.canary.subset.value, w.canary)
            ])
        }
        Routing::CanaryOnly => only(&cx.plan.canary.subset.value),
        Routing::StableOnly => only(&cx.plan.stable.subset.value),
    };
    if cx.base.find("VirtualService", &name).is_some() {
        return Err(cx
            .plan
            .diag(
                cx.plan.service.pos,
                format!(
                    "the base has a VirtualService `{name}` that does not route to {}",
                    cx.host
                ),
            )
            .hint("name it with `virtualService:` in the plan, or rename it")
            .into());
    }
    let mut generated = cx.new_resource(
        "virtual-service.yaml.j2",
        ("networking.istio.io/v1", "VirtualService"),
        &name,
        json!({"hosts": all_hosts, "route": route}),
        Vec::new(),
        format!("the mesh route to Service {name}, split by version"),
    )?;
    if let Some(http) = generated
        .object
        .at_mut("/spec/http")
        .and_then(Value::as_array_mut)
    {
        if let Some(p) = super::mirror::percent(cx) {
            for r in http.iter_mut().filter_map(Value::as_object_mut) {
                r.insert(
                    "mirror".into(),
                    json!({"host": cx.host, "subset": cx.plan.canary.subset.value}),
                );
                r.insert("mirrorPercentage".into(), super::mirror::percentage(p));
            }
        }
        if super::test_routes::tests_canary(cx) {
            let matches: Vec<Value> = cx.env.matches.iter().map(|m| m.value.clone()).collect();
            http.insert(
                0,
                json!({"name": "canary-0", "match": matches, "route": only(&cx.plan.canary.subset.value)}),
            );
        }
    }
    out.resources.push(generated);
    Ok(())
}
