//! The five invariants, as a list of small named rules over three traffic models of one
//! environment — the base alone, the record on disk, this render — and the step the plan's
//! kind declares this render to be. No rule knows a kind: each kind only says, in traffic
//! terms, what its step means (`Declared`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Class, DIRECT, MESH, Model, TOLERANCE, WorkloadFacts, round};
use super::record::Record;

/// What a kind says this render does, in traffic terms only.
#[derive(Debug, Clone, PartialEq)]
pub enum Declared {
    /// The plan's entry for the environment is the one its record on disk was rendered from:
    /// nothing may move (rule 2).
    Unchanged,
    /// The first stage: new workloads may appear, no request class and no revision changes.
    Prepare,
    /// Requests to a Service are split by weight (or by pod count) between two sets of
    /// workloads.
    Shift(Shift),
    /// Lanes: untagged ingress requests split by lane weight; tagged ones held in their lane.
    LaneWeight(LaneWeight),
    /// The rollback: no request class reaches these workloads any more, mirrors included.
    Abort { canary: Vec<String> },
    /// Namespaces (or workloads) move to another control-plane revision; no traffic moves.
    Waves(Revisions),
    /// Release objects go after the last weight: every class is where the final `Shift`
    /// (100% canary for a release, 0% for an upgrade's canary pods) sends it; pods may
    /// disappear only where no class reached them (rule 4).
    Cleanup(Shift),
    /// Nothing is left of the release: the render equals the base.
    Done,
}

/// A weight (or pod share) step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shift {
    /// The Service whose requests are split (for messages).
    pub service: String,
    /// Only classes delivered to these Service ports (empty: every port).
    pub ports: Vec<u32>,
    /// Workloads (`ns/name` as the model names them) of the stable side.
    pub stable: Vec<String>,
    /// Workloads of the canary side.
    pub canary: Vec<String>,
    /// The canary's percent before this step, when known (for the delta's words).
    pub from: Option<f64>,
    /// The canary's percent of every class delivered to the Service.
    pub to: f64,
    /// Classes the plan routes 100% to one side (test routes by header or cookie), as the
    /// conditions `explain::condition` writes: a class is held when one of its alternatives
    /// has every conjunct of one of these.
    pub held: Vec<String>,
    /// Workloads of the base whose revision this step changes.
    pub revisions: Option<Revisions>,
    /// Whether the split is Service load balancing (a second Deployment behind the same
    /// Service): then the `direct` classes are the ones split. Otherwise a `direct` class —
    /// callers reaching the Service without a mesh route while it selects both versions —
    /// splits by pod count whatever the weight: the delta shows it, the rule does not refuse it.
    pub by_pods: bool,
    /// Hosts the plan gives the routes in this environment (`hosts:`), in place of the base's.
    pub hosts: Vec<String>,
}

/// A lane weight step (LanePlan `route`, `shift`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaneWeight {
    /// The gateway (`ns/name`) whose untagged requests are split by lane weight.
    pub ingress: Option<String>,
    /// The baseline's workloads (every service of the chain that a lane runs a version of).
    pub baseline: Vec<String>,
    pub lanes: Vec<LaneShare>,
    /// Classes held in a lane: the lane header's conditions (`header x-lane=canary`).
    pub held: Vec<String>,
}

/// One lane: its copies and its share of the untagged ingress requests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaneShare {
    pub lane: String,
    pub copies: Vec<String>,
    pub to: f64,
}

/// Workloads moved to a revision: every injected workload of `namespaces` (`*`: every
/// namespace), and `workloads` by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Revisions {
    pub namespaces: Vec<String>,
    pub workloads: Vec<String>,
    pub to: String,
    /// Workloads the step leaves where they are although their namespace moves: their pod
    /// template names a revision itself.
    pub pinned: Vec<String>,
}

impl Revisions {
    fn covers(&self, workload: &str) -> bool {
        let ns = workload.split_once('/').map(|(ns, _)| ns);
        if self.pinned.iter().any(|w| w == workload) {
            return false;
        }
        self.workloads.iter().any(|w| w == workload)
            || self
                .namespaces
                .iter()
                .any(|n| n == "*" || Some(n.as_str()) == ns)
    }
}

/// One broken promise, ready for a located error: the lead adds where the plan sets the stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// The rule's name (`RULES`).
    pub rule: &'static str,
    pub environment: String,
    /// The request class, in words, when a class moved.
    pub class: Option<String>,
    /// The workload, when a workload changed or lost its Service.
    pub workload: Option<String>,
    /// Workload → percent before (the base, or the record on disk) and after (this render).
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
    pub message: String,
    pub hint: String,
}

/// What every rule reads.
pub struct Input<'a> {
    pub env: &'a str,
    pub base: &'a Model,
    pub disk: Option<&'a Record>,
    pub new: &'a Model,
    pub step: &'a Declared,
}

type Rule = fn(&Input<'_>) -> Vec<Violation>;

/// The invariants, in order. A new rule is a new entry.
pub const RULES: &[(&str, Rule)] = &[
    ("prepare-changes-no-traffic", prepare_changes_no_traffic),
    (
        "unchanged-environment-does-not-change",
        unchanged_does_not_change,
    ),
    ("step-moves-what-it-declares", step_moves_what_it_declares),
    ("no-endpoint-lost", no_endpoint_lost),
    ("done-equals-base", done_equals_base),
];

/// Every rule over one environment.
pub fn check(
    env: &str,
    base: &Model,
    disk: Option<&Record>,
    new: &Model,
    step: &Declared,
) -> Vec<Violation> {
    let hosts = match step {
        Declared::Shift(sh) | Declared::Cleanup(sh) => sh.hosts.as_slice(),
        _ => &[],
    };
    let rehosted = (!hosts.is_empty()).then(|| rehost(base, new, hosts));
    let input = Input {
        env,
        base: rehosted.as_ref().unwrap_or(base),
        disk,
        new,
        step,
    };
    RULES.iter().flat_map(|(_, rule)| rule(&input)).collect()
}

/// The base as this environment's routes name their hosts: a base class whose host the render
/// no longer has takes the environment's host where the render has the same route for it.
fn rehost(base: &Model, new: &Model, hosts: &[String]) -> Model {
    let mut out = base.clone();
    let joined = hosts.join(",");
    for c in &mut out.classes {
        if c.entry == DIRECT || new.classes.iter().any(|n| n.host == c.host) {
            continue;
        }
        let same_route = |n: &&Class| {
            n.host == joined
                && n.entry == c.entry
                && n.port == c.port
                && n.protocol == c.protocol
                && n.condition == c.condition
        };
        if new.classes.iter().any(|n| same_route(&n)) {
            c.host = joined.clone();
        }
    }
    out.classes.sort_by_key(Class::key);
    out
}

/// `a 90% · b 10%`, zero shares left out; `nothing` when empty.
pub fn shares(to: &BTreeMap<String, f64>) -> String {
    let parts: Vec<String> = to
        .iter()
        .filter(|(_, p)| **p > TOLERANCE)
        .map(|(w, p)| format!("{w} {}", percent(*p)))
        .collect();
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join(" · ")
    }
}

pub fn percent(p: f64) -> String {
    let p = round(p);
    if p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p}%")
    }
}

/// Whether two splits are the same (shares under the tolerance are none).
pub fn same_split(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> bool {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().all(|k| {
        let x = a.get(k).copied().unwrap_or(0.0);
        let y = b.get(k).copied().unwrap_or(0.0);
        (x - y).abs() <= TOLERANCE
    })
}

/// The Service `ns/name` (or `name`) a direct class's host names, as (name, namespace).
fn service_of(host: &str) -> (&str, Option<&str>) {
    match host.split_once('/') {
        Some((ns, name)) => (name, Some(ns)),
        None => (host, None),
    }
}

/// Whether `mesh_host` (a route host) names the Service of a direct class.
fn names_service(mesh_host: &str, direct_host: &str) -> bool {
    let (name, ns) = service_of(direct_host);
    mesh_host
        .split(',')
        .any(|h| crate::traffic::host_names(h, name, ns, None))
}

/// Whether every request of `narrow` is one `wide` describes: same callers and destination,
/// and each alternative of `narrow` has all conjuncts of some alternative of `wide`. A direct
/// class covers the mesh classes of its Service: without a mesh route, sidecars are its callers.
fn covers(wide: &Class, narrow: &Class) -> bool {
    if wide.entry == DIRECT && narrow.entry == MESH {
        return names_service(&narrow.host, &wide.host);
    }
    if wide.entry != narrow.entry || wide.host != narrow.host || wide.protocol != narrow.protocol {
        return false;
    }
    if wide.port.is_some() && narrow.port.is_some() && wide.port != narrow.port {
        return false;
    }
    let w = wide.alternatives();
    narrow
        .alternatives()
        .iter()
        .all(|n| w.iter().any(|alt| alt.iter().all(|c| n.contains(c))))
}

/// The class of `model` that `class`'s requests belong to: the same class, else the most
/// specific one covering it.
pub fn counterpart<'m>(model: &'m Model, class: &Class) -> Option<&'m Class> {
    let key = class.key();
    if let Some(same) = model.classes.iter().find(|c| c.key() == key) {
        return Some(same);
    }
    model
        .classes
        .iter()
        .filter(|c| covers(c, class))
        .max_by_key(|c| {
            (
                c.entry != DIRECT,
                c.alternatives().iter().map(Vec::len).min().unwrap_or(0),
            )
        })
        .or_else(|| {
            // A mesh class whose Service callers now reach directly (its route removed).
            (class.entry == DIRECT).then(|| {
                model
                    .classes
                    .iter()
                    .find(|c| c.entry == MESH && names_service(&c.host, &class.host))
            })?
        })
}

/// One class whose requests go elsewhere in `after` than in `before`.
#[derive(Debug, Clone)]
pub struct Move {
    pub class: Class,
    pub before: BTreeMap<String, f64>,
    pub after: BTreeMap<String, f64>,
    pub mirrors_before: BTreeMap<String, f64>,
    pub mirrors_after: BTreeMap<String, f64>,
}

/// `to` without its zero shares.
pub fn nonzero(to: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    to.iter()
        .filter(|(_, p)| **p > TOLERANCE)
        .map(|(w, p)| (w.clone(), *p))
        .collect()
}

/// Every class whose requests (or mirrors) go elsewhere in `after` than in `before`. A class
/// new in `after` is compared with the class of `before` its requests belonged to; callers
/// of a Service that `before` does not have (a per-version Service) are nobody's yet.
pub fn moves(before: &Model, after: &Model) -> Vec<Move> {
    let mut out: Vec<Move> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut push = |class: &Class, b: Option<&Class>, a: Option<&Class>| {
        let empty = BTreeMap::new();
        let (bt, bm) = b.map_or((&empty, &empty), |c| (&c.to, &c.mirrors));
        let (at, am) = a.map_or((&empty, &empty), |c| (&c.to, &c.mirrors));
        if (!same_split(bt, at) || !same_split(bm, am)) && seen.insert(class.key()) {
            out.push(Move {
                class: class.clone(),
                before: nonzero(bt),
                after: nonzero(at),
                mirrors_before: nonzero(bm),
                mirrors_after: nonzero(am),
            });
        }
    };
    for a in &after.classes {
        if a.entry == DIRECT && !before.services.contains_key(&a.host) {
            continue;
        }
        push(a, counterpart(before, a), Some(a));
    }
    for b in &before.classes {
        if after.classes.iter().any(|a| a.key() == b.key()) {
            continue;
        }
        if b.entry == DIRECT && !after.services.contains_key(&b.host) {
            // The Service is gone: its callers reach nothing.
            push(b, Some(b), None);
            continue;
        }
        push(b, Some(b), counterpart(after, b));
    }
    out
}

fn violation(
    rule: &'static str,
    input: &Input<'_>,
    m: &Move,
    message: String,
    hint: &str,
) -> Violation {
    Violation {
        rule,
        environment: input.env.to_string(),
        class: Some(m.class.describe()),
        workload: None,
        before: m.before.clone(),
        after: m.after.clone(),
        message,
        hint: hint.to_string(),
    }
}

/// `reviews-v1 100% → reviews-v1 50% · reviews-v2 50%`, with mirrors when they moved.
fn moved_words(m: &Move) -> String {
    let mut out = format!("{} → {}", shares(&m.before), shares(&m.after));
    if !same_split(&m.mirrors_before, &m.mirrors_after) {
        out.push_str(&format!(
            "; mirrored {} → {}",
            shares(&m.mirrors_before),
            shares(&m.mirrors_after)
        ));
    }
    out
}

/// Base workloads (in both models) whose revision differs, less what `allowed` covers.
fn revision_changes<'m>(
    before: &'m Model,
    after: &'m Model,
    allowed: Option<&Revisions>,
) -> Vec<(&'m String, &'m WorkloadFacts, &'m WorkloadFacts)> {
    before
        .workloads
        .iter()
        .filter_map(|(w, b)| Some((w, b, after.workloads.get(w)?)))
        .filter(|(w, b, a)| {
            b.revision != a.revision
                && !allowed.is_some_and(|r| r.covers(w) && a.revision.as_deref() == Some(&r.to))
        })
        .collect()
}

fn rev(r: &Option<String>) -> String {
    r.clone().unwrap_or_else(|| "none".to_string())
}

fn revision_violation(
    rule: &'static str,
    input: &Input<'_>,
    w: &str,
    b: &WorkloadFacts,
    a: &WorkloadFacts,
    why: &str,
    hint: &str,
) -> Violation {
    Violation {
        rule,
        environment: input.env.to_string(),
        class: None,
        workload: Some(w.to_string()),
        before: BTreeMap::new(),
        after: BTreeMap::new(),
        message: format!(
            "{}: {why} but the revision injecting {w} would change from {} to {}",
            input.env,
            rev(&b.revision),
            rev(&a.revision)
        ),
        hint: hint.to_string(),
    }
}

/// 1. At `prepare` every request class reaches the same workloads with the same shares as in
///    the base, and no workload changes revision.
pub fn prepare_changes_no_traffic(input: &Input<'_>) -> Vec<Violation> {
    const RULE: &str = "prepare-changes-no-traffic";
    if *input.step != Declared::Prepare {
        return Vec::new();
    }
    let hint = "prepare only adds what later stages route to: route or pin nothing that changes who serves a request (a Service that selects several versions keeps serving them all)";
    let mut out: Vec<Violation> = moves(input.base, input.new)
        .iter()
        .map(|m| {
            violation(
                RULE,
                input,
                m,
                format!(
                    "{} is at prepare, which changes no traffic, but {} would go {}",
                    input.env,
                    m.class.describe(),
                    moved_words(m)
                ),
                hint,
            )
        })
        .collect();
    for (w, b, a) in revision_changes(input.base, input.new, None) {
        out.push(revision_violation(
            RULE,
            input,
            w,
            b,
            a,
            "it is at prepare, which changes nothing",
            hint,
        ));
    }
    out
}

/// Whether any class of `m` sends requests (or mirrors) to `workload`.
fn reached(m: &Model, workload: &str) -> bool {
    m.classes.iter().any(|c| {
        c.to.get(workload).is_some_and(|p| *p > TOLERANCE)
            || c.mirrors.get(workload).is_some_and(|p| *p > TOLERANCE)
    })
}

/// 2. An environment whose plan entry is the one its record was rendered from does not
///    change: no class moves, and no workload changes images or revision. A base edit that
///    moves nothing (a ConfigMap, limits, replicas) passes.
pub fn unchanged_does_not_change(input: &Input<'_>) -> Vec<Violation> {
    const RULE: &str = "unchanged-environment-does-not-change";
    let (Declared::Unchanged, Some(disk)) = (input.step, input.disk) else {
        return Vec::new();
    };
    let disk = &disk.model;
    let hint = "its plan entry did not change, so the base edit belongs to the environments that move: use a per-environment base, or advance this environment first (or accept the change for this environment explicitly)";
    let mut out: Vec<Violation> = moves(disk, input.new)
        .iter()
        .map(|m| {
            violation(
                RULE,
                input,
                m,
                format!(
                    "{}'s plan entry did not change, but {} would go {}",
                    input.env,
                    m.class.describe(),
                    moved_words(m)
                ),
                hint,
            )
        })
        .collect();
    for (w, b) in &disk.workloads {
        let Some(a) = input.new.workloads.get(w) else {
            continue;
        };
        // Every workload counts, not only those requests reach: a new image or another
        // control plane restarts its pods and changes what it sends, too.
        let serves = reached(disk, w) || reached(input.new, w);
        if b.revision != a.revision {
            out.push(revision_violation(
                RULE,
                input,
                w,
                b,
                a,
                &if serves {
                    format!("its plan entry did not change and {w} serves requests,")
                } else {
                    "its plan entry did not change,".to_string()
                },
                hint,
            ));
        }
        if b.images != a.images {
            let changed: Vec<String> = a
                .images
                .iter()
                .filter(|(c, i)| b.images.get(*c) != Some(*i))
                .map(|(c, i)| {
                    format!(
                        "container {c} from {} to {i}",
                        b.images.get(c).map_or("none", String::as_str)
                    )
                })
                .collect();
            out.push(Violation {
                rule: RULE,
                environment: input.env.to_string(),
                class: None,
                workload: Some(w.clone()),
                before: BTreeMap::new(),
                after: BTreeMap::new(),
                message: format!(
                    "{}'s plan entry did not change, but {w}{} would change images: {}",
                    input.env,
                    if serves {
                        ", which serves requests,"
                    } else {
                        ""
                    },
                    if changed.is_empty() {
                        "a container removed".to_string()
                    } else {
                        changed.join(", ")
                    }
                ),
                hint: hint.to_string(),
            });
        }
    }
    out
}

/// Whether one alternative of the class's condition has every conjunct of `held`.
fn is_held(class: &Class, held: &[String]) -> bool {
    held.iter().any(|h| {
        let want: Vec<&str> = h.split(" and ").collect();
        class
            .alternatives()
            .iter()
            .any(|alt| want.iter().all(|w| alt.iter().any(|c| c == w)))
    })
}

fn touches(c: &Class, workloads: &[String]) -> bool {
    c.to.keys().any(|w| workloads.contains(w))
}

/// 3. A step moves exactly what it declares: the declared share of every class delivered to
///    the Service (port), on every route, whatever it matches; held classes wholly on one side;
///    lane weights only on untagged ingress requests; waves only their namespaces' workloads;
///    after an abort no class, header, lane or mirror reaches the canary; cleanup routes every
///    class as the base does.
pub fn step_moves_what_it_declares(input: &Input<'_>) -> Vec<Violation> {
    match input.step {
        Declared::Shift(sh) => shift(input, sh),
        Declared::LaneWeight(lw) => lane_weight(input, lw),
        Declared::Abort { canary } => abort(input, canary),
        Declared::Waves(r) => unmoved(input, Some(r), "a wave moves no traffic"),
        Declared::Cleanup(sh) => shift(input, sh),
        Declared::Unchanged | Declared::Prepare | Declared::Done => Vec::new(),
    }
}

const STEP: &str = "step-moves-what-it-declares";

/// Classes that the step does not touch stay as in the base; revisions move only as declared.
fn unmoved_except(
    input: &Input<'_>,
    revisions: Option<&Revisions>,
    moving: &dyn Fn(&Class, Option<&Class>) -> bool,
    why: &str,
) -> Vec<Violation> {
    let hint = "the step's render moves more than the plan says: check the routes the base adds for this Service, and which pods each Service selects";
    let mut out: Vec<Violation> = moves(input.base, input.new)
        .iter()
        .filter(|m| {
            let now = input.new.classes.iter().find(|c| c.key() == m.class.key());
            !moving(now.unwrap_or(&m.class), counterpart(input.base, &m.class))
        })
        .map(|m| {
            violation(
                STEP,
                input,
                m,
                format!(
                    "{}: {why}, but {} would go {}",
                    input.env,
                    m.class.describe(),
                    moved_words(m)
                ),
                hint,
            )
        })
        .collect();
    for (w, b, a) in revision_changes(input.base, input.new, revisions) {
        out.push(revision_violation(
            STEP,
            input,
            w,
            b,
            a,
            "the step does not move it to another revision",
            "a revision moves only in the waves (namespaces) or workloads the step names",
        ));
    }
    if let Some(r) = revisions {
        for (w, b) in &input.base.workloads {
            if r.covers(w)
                && b.revision.is_some()
                && let Some(a) = input.new.workloads.get(w)
                && a.revision.as_deref() != Some(r.to.as_str())
            {
                out.push(Violation {
                    rule: STEP,
                    environment: input.env.to_string(),
                    class: None,
                    workload: Some(w.clone()),
                    before: BTreeMap::new(),
                    after: BTreeMap::new(),
                    message: format!(
                        "{}: the step moves {w} to revision {}, but it would be injected by {}",
                        input.env,
                        r.to,
                        rev(&a.revision)
                    ),
                    hint:
                        "check the namespace's labels and the revision tag's webhook in the render"
                            .to_string(),
                });
            }
        }
    }
    out
}

fn unmoved(input: &Input<'_>, revisions: Option<&Revisions>, why: &str) -> Vec<Violation> {
    unmoved_except(input, revisions, &|_, _| false, why)
}

fn shift(input: &Input<'_>, sh: &Shift) -> Vec<Violation> {
    let both: Vec<String> = sh.stable.iter().chain(&sh.canary).cloned().collect();
    let port_ok = |c: &Class| sh.ports.is_empty() || c.port.is_none_or(|p| sh.ports.contains(&p));
    let split = |c: &Class, b: Option<&Class>| {
        (touches(c, &both) || b.is_some_and(|b| touches(b, &both))) && port_ok(c)
    };
    // Direct callers split by pod count: checked only when that is the step's split.
    let weighed = |c: &Class| (c.entry == DIRECT) == sh.by_pods;
    let hint = format!(
        "every route that delivers to Service {} must carry the step's weights, whatever port or path it matches: name it in the plan (routes, ports) or route it elsewhere in the base",
        sh.service
    );
    let mut out = Vec::new();
    for c in &input.new.classes {
        if !split(c, counterpart(input.base, c)) || !weighed(c) {
            continue;
        }
        let canary = c.share_of(&sh.canary);
        let stable = c.share_of(&sh.stable);
        // The split applies to the part of the class that goes to the Service; the rest (a
        // base route's share to another Service) stays as it is in the base.
        let total = round(canary + stable);
        let base = counterpart(input.base, c);
        let rest = |to: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
            to.iter()
                .filter(|(w, _)| !both.contains(w))
                .map(|(w, p)| (w.clone(), *p))
                .collect()
        };
        let held = is_held(c, &sh.held);
        // A test route takes all its requests to one side, the base's other shares included.
        let rest_kept = held || base.is_none_or(|b| same_split(&rest(&b.to), &rest(&c.to)));
        // A class that reached the Service's pods must still reach some.
        let rest_kept = rest_kept && (total > TOLERANCE || base.is_none_or(|b| !touches(b, &both)));
        let ok = rest_kept
            && if held {
                (canary - 100.0).abs() <= TOLERANCE || (stable - 100.0).abs() <= TOLERANCE
            } else {
                (canary - sh.to * total / 100.0).abs() <= TOLERANCE
                    && (stable - (100.0 - sh.to) * total / 100.0).abs() <= TOLERANCE
            };
        if !ok {
            let expected = if held {
                "all on one side (a test route)".to_string()
            } else {
                format!(
                    "{} canary, {} stable",
                    percent(sh.to),
                    percent(100.0 - sh.to)
                )
            };
            out.push(Violation {
                rule: STEP,
                environment: input.env.to_string(),
                class: Some(c.describe()),
                workload: None,
                before: base.map(|b| b.to.clone()).unwrap_or_default(),
                after: c.to.clone(),
                message: format!(
                    "{}: the step sends {expected} of Service {}'s requests, but {} would go {}",
                    input.env,
                    sh.service,
                    c.describe(),
                    shares(&c.to)
                ),
                hint: hint.clone(),
            });
        }
    }
    out.extend(unmoved_except(
        input,
        sh.revisions.as_ref(),
        &|c, b| split(c, b),
        &format!("the step moves only Service {}'s requests", sh.service),
    ));
    out
}

fn lane_weight(input: &Input<'_>, lw: &LaneWeight) -> Vec<Violation> {
    let copies: Vec<String> = lw.lanes.iter().flat_map(|l| l.copies.clone()).collect();
    let all: Vec<String> = lw.baseline.iter().chain(&copies).cloned().collect();
    let split =
        |c: &Class, b: Option<&Class>| touches(c, &all) || b.is_some_and(|b| touches(b, &all));
    let hint = "a lane takes only the untagged ingress requests its weight says, and the requests carrying its header; check the lane routes of every service of the chain";
    let mut out = Vec::new();
    for c in &input.new.classes {
        if !split(c, counterpart(input.base, c)) {
            continue;
        }
        let base_share = c.share_of(&lw.baseline);
        // Lanes split the part of the class that goes to the chain's workloads; what went to
        // other workloads (a second Deployment behind the Service) stays where it went.
        let total = c.share_of(&all);
        let rest = |to: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
            to.iter()
                .filter(|(w, _)| !all.contains(w))
                .map(|(w, p)| (w.clone(), *p))
                .collect()
        };
        let held = is_held(c, &lw.held);
        let base = counterpart(input.base, c);
        let rest_kept = held || base.is_none_or(|b| same_split(&rest(&b.to), &rest(&c.to)));
        let rest_kept = rest_kept && (total > TOLERANCE || base.is_none_or(|b| !touches(b, &all)));
        let near = |a: f64, b: f64| (a - b).abs() <= TOLERANCE;
        let (ok, expected) = if held {
            let one_lane = lw.lanes.iter().any(|l| near(c.share_of(&l.copies), 100.0));
            (
                one_lane || near(base_share, 100.0),
                "all in one lane".to_string(),
            )
        } else if lw.ingress.as_deref() == Some(c.entry.as_str()) {
            let lanes_ok = lw
                .lanes
                .iter()
                .all(|l| near(c.share_of(&l.copies), l.to * total / 100.0));
            let rest_share: f64 = 100.0 - lw.lanes.iter().map(|l| l.to).sum::<f64>();
            (
                rest_kept && lanes_ok && near(base_share, rest_share * total / 100.0),
                format!(
                    "{} to the baseline{}",
                    percent(rest_share),
                    lw.lanes
                        .iter()
                        .map(|l| format!(", {} to lane {}", percent(l.to), l.lane))
                        .collect::<String>()
                ),
            )
        } else {
            (
                rest_kept && near(base_share, total),
                "all to the baseline (requests without a lane header)".to_string(),
            )
        };
        if !ok {
            out.push(Violation {
                rule: STEP,
                environment: input.env.to_string(),
                class: Some(c.describe()),
                workload: None,
                before: counterpart(input.base, c)
                    .map(|b| b.to.clone())
                    .unwrap_or_default(),
                after: c.to.clone(),
                message: format!(
                    "{}: the step sends {expected}, but {} would go {}",
                    input.env,
                    c.describe(),
                    shares(&c.to)
                ),
                hint: hint.to_string(),
            });
        }
    }
    out.extend(unmoved_except(
        input,
        None,
        &|c, b| split(c, b),
        "lane weights move only the chain's requests",
    ));
    out
}

fn abort(input: &Input<'_>, canary: &[String]) -> Vec<Violation> {
    let mut out = Vec::new();
    // Callers without mesh routing reach every pod the Service selects, by pod count, whatever
    // the routes say (as for a weight step: the delta shows them, the rule does not refuse).
    for c in input
        .new
        .classes
        .iter()
        .filter(|c| !(c.entry == DIRECT && c.by_pods))
    {
        let to: BTreeMap<String, f64> =
            c.to.iter()
                .chain(&c.mirrors)
                .filter(|(w, p)| canary.contains(w) && **p > TOLERANCE)
                .map(|(w, p)| (w.clone(), *p))
                .collect();
        if to.is_empty() {
            continue;
        }
        let mirrored = c.mirrors.keys().any(|w| to.contains_key(w));
        out.push(Violation {
            rule: STEP,
            environment: input.env.to_string(),
            class: Some(c.describe()),
            workload: None,
            before: BTreeMap::new(),
            after: c.to.clone(),
            message: format!(
                "{}: after an abort no request reaches the canary, but {} would still {} {}",
                input.env,
                c.describe(),
                if mirrored { "reach (mirrors included)" } else { "reach" },
                shares(&to)
            ),
            hint: "an abort takes the canary out of every route: weights, test routes by header or cookie, lane routes and mirrors".to_string(),
        });
    }
    out
}

/// 4. Pods a Service selected in the base stay selected by it, or reached by a route, at
///    every stage, unless the render removes their workload.
pub fn no_endpoint_lost(input: &Input<'_>) -> Vec<Violation> {
    const RULE: &str = "no-endpoint-lost";
    let mut out = Vec::new();
    for (svc, workloads) in &input.base.services {
        let now = input.new.services.get(svc);
        for w in workloads {
            if !input.new.workloads.contains_key(w)
                || now.is_some_and(|n| n.contains(w))
                || reached(input.new, w)
            {
                continue;
            }
            out.push(Violation {
                rule: RULE,
                environment: input.env.to_string(),
                class: None,
                workload: Some(w.clone()),
                before: BTreeMap::new(),
                after: BTreeMap::new(),
                message: format!(
                    "{}: Service {svc} selects the pods of {w} in the base, and in this render neither it ({}) nor any route does",
                    input.env,
                    now.map_or("the Service is gone".to_string(), |n| if n.is_empty() {
                        "it selects nothing".to_string()
                    } else {
                        format!("it selects {}", n.join(", "))
                    })
                ),
                hint: format!("{w} runs but gets no requests: keep its pods in the Service's selector (every label the patch adds must be on them too), or remove the workload in the plan"),
            });
        }
    }
    out
}

/// 5. At `done` the render is the base: no class, Service or workload differs.
pub fn done_equals_base(input: &Input<'_>) -> Vec<Violation> {
    const RULE: &str = "done-equals-base";
    if *input.step != Declared::Done {
        return Vec::new();
    }
    let hint = "at done nothing of the release may remain: move what the release changed into the base first";
    let mut out: Vec<Violation> = moves(input.base, input.new)
        .iter()
        .map(|m| {
            violation(
                RULE,
                input,
                m,
                format!(
                    "{} is done, but {} would go {} (the base alone: {})",
                    input.env,
                    m.class.describe(),
                    shares(&m.after),
                    shares(&m.before)
                ),
                hint,
            )
        })
        .collect();
    let names: std::collections::BTreeSet<&String> = input
        .base
        .workloads
        .keys()
        .chain(input.new.workloads.keys())
        .collect();
    for w in names {
        let (b, a) = (input.base.workloads.get(w), input.new.workloads.get(w));
        if b != a {
            let what = match (b, a) {
                (None, Some(_)) => "it is not in the base".to_string(),
                (Some(_), None) => "the render removes it".to_string(),
                _ => "its images, revision or replicas differ from the base's".to_string(),
            };
            out.push(Violation {
                rule: RULE,
                environment: input.env.to_string(),
                class: None,
                workload: Some(w.clone()),
                before: BTreeMap::new(),
                after: BTreeMap::new(),
                message: format!(
                    "{} is done, but workload {w} remains changed: {what}",
                    input.env
                ),
                hint: hint.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn split(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(w, p)| (w.to_string(), *p)).collect()
    }

    fn class(entry: &str, host: &str, condition: &str, to: &[(&str, f64)]) -> Class {
        Class {
            entry: entry.to_string(),
            host: host.to_string(),
            port: Some(8080),
            protocol: if entry == DIRECT { "any" } else { "http" }.to_string(),
            condition: condition.to_string(),
            except: Vec::new(),
            to: split(to),
            mirrors: BTreeMap::new(),
            by_pods: false,
        }
    }

    fn facts(image: &str, revision: Option<&str>) -> WorkloadFacts {
        WorkloadFacts {
            images: [("main".to_string(), image.to_string())].into(),
            revision: revision.map(str::to_string),
            replicas: 1,
        }
    }

    /// Service `web` in `shop`, its Deployment `web`, one mesh route to it.
    fn base() -> Model {
        Model {
            classes: vec![class(MESH, "web", "every request", &[("shop/web", 100.0)])],
            services: [("shop/web".to_string(), vec!["shop/web".to_string()])].into(),
            workloads: [("shop/web".to_string(), facts("web:1", Some("1-22-1")))].into(),
        }
    }

    /// `base` with the stable copy `web-v1` beside `web`, the route split `100 - w` / `w`.
    fn shifted(w: f64) -> Model {
        let mut m = base();
        m.classes = vec![class(
            MESH,
            "web",
            "every request",
            &[("shop/web-v1", 100.0 - w), ("shop/web", w)],
        )];
        m.services.insert(
            "shop/web".into(),
            vec!["shop/web".into(), "shop/web-v1".into()],
        );
        m.workloads
            .insert("shop/web-v1".into(), facts("web:1", Some("1-22-1")));
        m
    }

    fn step(to: f64) -> Shift {
        Shift {
            service: "web".into(),
            stable: vec!["shop/web-v1".into()],
            canary: vec!["shop/web".into()],
            to,
            ..Shift::default()
        }
    }

    fn rules_of(v: &[Violation]) -> Vec<&'static str> {
        v.iter().map(|v| v.rule).collect()
    }

    #[test]
    fn prepare_passes_when_nothing_moves_and_refuses_a_move_or_a_revision() {
        let mut new = base();
        new.workloads
            .insert("shop/web-v1".into(), facts("web:1", Some("1-22-1")));
        assert!(check("e", &base(), None, &new, &Declared::Prepare).is_empty());
        // The route pinned to the copy: the class moves.
        let moved = shifted(0.0);
        let v = prepare_changes_no_traffic(&Input {
            env: "e",
            base: &base(),
            disk: None,
            new: &moved,
            step: &Declared::Prepare,
        });
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].before, split(&[("shop/web", 100.0)]));
        assert_eq!(v[0].after, split(&[("shop/web-v1", 100.0)]));
        // A revision change at prepare.
        let mut rev = new.clone();
        rev.workloads
            .insert("shop/web".into(), facts("web:1", Some("1-23-1")));
        let v = check("e", &base(), None, &rev, &Declared::Prepare);
        assert_eq!(rules_of(&v), vec!["prepare-changes-no-traffic"]);
        assert!(
            v[0].message.contains("from 1-22-1 to 1-23-1"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn prepare_allows_the_direct_class_of_a_new_service() {
        let mut new = base();
        new.classes.push(class(
            DIRECT,
            "shop/web-v1",
            "every request",
            &[("shop/web-v1", 100.0)],
        ));
        new.services
            .insert("shop/web-v1".into(), vec!["shop/web-v1".into()]);
        new.workloads
            .insert("shop/web-v1".into(), facts("web:1", None));
        assert!(check("e", &base(), None, &new, &Declared::Prepare).is_empty());
    }

    #[test]
    fn an_unchanged_environment_refuses_moves_image_and_revision_changes() {
        let disk = Record::new(
            serde_json::json!({"stage": "shift", "weight": 10}),
            shifted(10.0),
        );
        assert!(
            check(
                "e",
                &base(),
                Some(&disk),
                &shifted(10.0),
                &Declared::Unchanged
            )
            .is_empty()
        );
        // Without a record there is nothing to compare with.
        assert!(check("e", &base(), None, &shifted(25.0), &Declared::Unchanged).is_empty());
        let v = check(
            "e",
            &base(),
            Some(&disk),
            &shifted(25.0),
            &Declared::Unchanged,
        );
        assert_eq!(rules_of(&v), vec!["unchanged-environment-does-not-change"]);
        assert_eq!(
            v[0].after,
            split(&[("shop/web-v1", 75.0), ("shop/web", 25.0)])
        );
        // New code for a workload that serves requests.
        let mut image = shifted(10.0);
        image
            .workloads
            .insert("shop/web".into(), facts("web:2", Some("1-22-1")));
        let v = check("e", &base(), Some(&disk), &image, &Declared::Unchanged);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("container main from web:1 to web:2"),
            "{}",
            v[0].message
        );
        // ... and for one that serves nothing (weight 0 on the canary) too: new code restarts
        // its pods and changes what it sends, whoever calls it.
        let disk0 = Record::new(serde_json::json!({"weight": 0}), shifted(0.0));
        let mut idle = shifted(0.0);
        idle.workloads
            .insert("shop/web".into(), facts("web:2", Some("1-22-1")));
        let v = check("e", &base(), Some(&disk0), &idle, &Declared::Unchanged);
        assert_eq!(rules_of(&v), vec!["unchanged-environment-does-not-change"]);
        assert!(
            v[0].message
                .ends_with("shop/web would change images: container main from web:1 to web:2"),
            "{}",
            v[0].message
        );
        // Replicas are not code: they pass.
        let mut scaled = shifted(0.0);
        if let Some(w) = scaled.workloads.get_mut("shop/web") {
            w.replicas += 2;
        }
        assert!(check("e", &base(), Some(&disk0), &scaled, &Declared::Unchanged).is_empty());
    }

    #[test]
    fn a_shift_moves_its_weight_on_every_route_to_the_service() {
        assert!(
            check(
                "e",
                &base(),
                None,
                &shifted(10.0),
                &Declared::Shift(step(10.0))
            )
            .is_empty()
        );
        let v = check(
            "e",
            &base(),
            None,
            &shifted(10.0),
            &Declared::Shift(step(25.0)),
        );
        assert_eq!(rules_of(&v), vec!["step-moves-what-it-declares"]);
        // A gateway route matching another port, delivering to the same Service: left on stable.
        let mut b = base();
        b.classes.push(class(
            "istio-system/public",
            "*",
            "port 31400",
            &[("shop/web", 100.0)],
        ));
        let mut new = shifted(10.0);
        new.classes.push(class(
            "istio-system/public",
            "*",
            "port 31400",
            &[("shop/web-v1", 100.0)],
        ));
        let v = check("e", &b, None, &new, &Declared::Shift(step(10.0)));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            v[0].class.as_deref(),
            Some("gateway istio-system/public, *:8080 (http, port 31400)")
        );
        // Only the plan's Service ports are split: a class of another port stays as it was.
        let mut other_port = class(MESH, "web", "port 9001", &[("shop/web", 100.0)]);
        other_port.port = Some(9001);
        let mut b = base();
        b.classes.push(other_port.clone());
        let mut new = shifted(10.0);
        new.classes.push(other_port);
        let mut only = step(10.0);
        only.ports = vec![8080];
        assert!(check("e", &b, None, &new, &Declared::Shift(only)).is_empty());
        assert_eq!(
            check("e", &b, None, &new, &Declared::Shift(step(10.0))).len(),
            1
        );
    }

    #[test]
    fn a_test_route_is_held_on_one_side_and_other_classes_stay() {
        let mut new = shifted(10.0);
        new.classes.push(class(
            MESH,
            "web",
            "header x-canary=true",
            &[("shop/web", 100.0)],
        ));
        let mut held = step(10.0);
        held.held = vec!["header x-canary=true".into()];
        assert!(check("e", &base(), None, &new, &Declared::Shift(held.clone())).is_empty());
        // Not declared as held: it is a class at 100% where the step says 10%.
        assert_eq!(
            check("e", &base(), None, &new, &Declared::Shift(step(10.0))).len(),
            1
        );
        // A class of another Service that moves is not the step's.
        let mut b = base();
        b.classes.push(class(
            MESH,
            "cart",
            "every request",
            &[("shop/cart", 100.0)],
        ));
        let mut other = new.clone();
        other.classes.push(class(
            MESH,
            "cart",
            "every request",
            &[("shop/cart-v2", 100.0)],
        ));
        let v = check("e", &b, None, &other, &Declared::Shift(held));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message.contains("moves only Service web's requests"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn lane_weights_move_only_untagged_ingress_requests() {
        let gw = "istio-system/ingress";
        let b = Model {
            classes: vec![class(
                gw,
                "mock.example.com",
                "every request",
                &[("mock/a", 100.0)],
            )],
            ..Model::default()
        };
        let lanes = LaneWeight {
            ingress: Some(gw.into()),
            baseline: vec!["mock/a".into()],
            lanes: vec![LaneShare {
                lane: "canary".into(),
                copies: vec!["mock/a-canary".into()],
                to: 10.0,
            }],
            held: vec!["header x-lane=canary".into()],
        };
        let good = Model {
            classes: vec![
                class(
                    gw,
                    "mock.example.com",
                    "every request",
                    &[("mock/a", 90.0), ("mock/a-canary", 10.0)],
                ),
                class(
                    gw,
                    "mock.example.com",
                    "header x-lane=canary",
                    &[("mock/a-canary", 100.0)],
                ),
                class(
                    MESH,
                    "a",
                    "header x-lane=canary",
                    &[("mock/a-canary", 100.0)],
                ),
                class(MESH, "a", "every request", &[("mock/a", 100.0)]),
            ],
            ..Model::default()
        };
        assert!(check("e", &b, None, &good, &Declared::LaneWeight(lanes.clone())).is_empty());
        // Untagged mesh requests sent into the lane.
        let mut bad = good.clone();
        bad.classes[3] = class(
            MESH,
            "a",
            "every request",
            &[("mock/a", 90.0), ("mock/a-canary", 10.0)],
        );
        let v = check("e", &b, None, &bad, &Declared::LaneWeight(lanes));
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].class.as_deref(),
            Some("mesh callers of a:8080 (http, every request)")
        );
    }

    #[test]
    fn an_abort_leaves_no_class_or_mirror_on_the_canary() {
        let canary = Declared::Abort {
            canary: vec!["shop/web".into()],
        };
        assert!(check("e", &base(), None, &shifted(0.0), &canary).is_empty());
        let mut mirrored = shifted(0.0);
        mirrored.classes[0].mirrors = split(&[("shop/web", 5.0)]);
        let v = check("e", &base(), None, &mirrored, &canary);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("(mirrors included) shop/web 5%"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_wave_moves_only_its_namespaces() {
        let b = Model {
            workloads: [
                ("a/sleep".to_string(), facts("curl", Some("1-22-1"))),
                ("b/sleep".to_string(), facts("curl", Some("1-22-1"))),
                ("c/sleep".to_string(), facts("curl", None)),
            ]
            .into(),
            ..Model::default()
        };
        let wave = Declared::Waves(Revisions {
            namespaces: vec!["a".into()],
            workloads: Vec::new(),
            to: "1-23-1".into(),
            pinned: Vec::new(),
        });
        let mut new = b.clone();
        new.workloads
            .insert("a/sleep".into(), facts("curl", Some("1-23-1")));
        assert!(check("e", &b, None, &new, &wave).is_empty());
        new.workloads
            .insert("b/sleep".into(), facts("curl", Some("1-23-1")));
        let v = check("e", &b, None, &new, &wave);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].workload.as_deref(), Some("b/sleep"));
        // A wave's workload left on the old revision.
        let stuck = b.clone();
        let v = check("e", &b, None, &stuck, &wave);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("moves a/sleep to revision 1-23-1"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_service_that_stops_selecting_a_workload_of_the_base_loses_it() {
        let mut b = base();
        b.services.insert(
            "shop/web".into(),
            vec!["shop/web".into(), "shop/web-b".into()],
        );
        b.workloads
            .insert("shop/web-b".into(), facts("web:1", None));
        let mut new = b.clone();
        new.services
            .insert("shop/web".into(), vec!["shop/web".into()]);
        let v = no_endpoint_lost(&Input {
            env: "e",
            base: &b,
            disk: None,
            new: &new,
            step: &Declared::Prepare,
        });
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].workload.as_deref(), Some("shop/web-b"));
        // Removed by the render, or reached by a route: not lost.
        let mut removed = new.clone();
        removed.workloads.remove("shop/web-b");
        assert!(
            no_endpoint_lost(&Input {
                env: "e",
                base: &b,
                disk: None,
                new: &removed,
                step: &Declared::Prepare
            })
            .is_empty()
        );
        let mut routed = new.clone();
        routed.classes.push(class(
            MESH,
            "web-b",
            "every request",
            &[("shop/web-b", 100.0)],
        ));
        assert!(
            no_endpoint_lost(&Input {
                env: "e",
                base: &b,
                disk: None,
                new: &routed,
                step: &Declared::Prepare
            })
            .is_empty()
        );
    }

    #[test]
    fn done_is_the_base_alone() {
        assert!(check("e", &base(), None, &base(), &Declared::Done).is_empty());
        let mut left = base();
        left.workloads
            .insert("shop/web-v1".into(), facts("web:1", None));
        let v = check("e", &base(), None, &left, &Declared::Done);
        assert_eq!(rules_of(&v), vec!["done-equals-base"]);
        assert!(
            v[0].message
                .contains("workload shop/web-v1 remains changed: it is not in the base")
        );
        let v = check("e", &base(), None, &shifted(50.0), &Declared::Done);
        assert!(v.iter().any(|v| v.class.is_some()), "{v:?}");
    }

    #[test]
    fn a_direct_class_covers_the_mesh_routes_that_replace_it() {
        let direct = class(DIRECT, "shop/web", "every request", &[("shop/web", 100.0)]);
        let mesh = class(
            MESH,
            "web.shop.svc.cluster.local",
            "header x=1",
            &[("shop/web", 100.0)],
        );
        assert!(covers(&direct, &mesh));
        assert!(!covers(&mesh, &direct));
        let wide = class(MESH, "web", "uri prefix /api", &[]);
        assert!(covers(
            &wide,
            &class(MESH, "web", "uri prefix /api and header x=1", &[])
        ));
        assert!(!covers(
            &wide,
            &class(MESH, "web", "uri prefix /api, or uri prefix /b", &[])
        ));
    }
}
