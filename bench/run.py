#!/usr/bin/env python3
"""canaryplan benchmark: generated monorepos of N apps (each app in its own namespace), rendered
by canaryplan against `cat` of the same files and against `kubectl kustomize`, side by side in the
same run. Prints a Markdown report (the figures in BENCHMARKS.md come from it).

    python3 bench/run.py [--scale 10,100,300,1000,3000] [--apps 200] [--runs 5] [--sample 10]
                         [--bin OLD_BINARY] [--only scale,kustomize,limits]

Every time is the minimum of --runs runs (the machine is shared: the minimum is the run least
disturbed by others); the load average is printed beside each table. Peak RSS comes from
`/usr/bin/time -f %M`. Needs cargo, kubectl and /usr/bin/time. Standard library only.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "canaryplan")


def app_files(i):
    name = f"app-{i:04d}"
    svc = f"{name}-web"
    plan = f"""apiVersion: canaryplan.io/v1alpha1
kind: CanaryPlan
metadata:
  name: {name}
spec:
  base: base
  service: {svc}
  workload: {name}
  podLabels: {{canary: enabled}}
  stable:
    version: v1
    image: registry.example/{name}@sha256:{i:064x}
    labels: {{app: {name}-v1}}
  canary:
    version: v2
  selector:
    remove: [app]
    add: {{canary: enabled, team: team-{i % 7}}}
  allowFrom:
  - {{namespace: ingress-nginx, serviceAccount: ingress-nginx}}
  steps: [1, 5, 25, 50, 100]
  output: rendered
  environments:
    staging:
      hosts: [{name}.staging.example.com]
      stage: shift
      weight: 25
    production:
      hosts: [{name}.example.com]
      stage: shift
      weight: 5
"""
    base = {
        "kustomization.yaml": f"namespace: {name}\nresources:\n- app.yaml\n- routing.yaml\n",
        "app.yaml": f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {name}
  labels: {{app: {name}, team: team-{i % 7}}}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}, team: team-{i % 7}}}
    spec:
      containers:
      - name: app
        image: registry.example/{name}:1.{i}.0
        ports: [{{containerPort: 8080, name: http}}]
        env:
        - {{name: MODE, value: "on"}}
        - {{name: UMASK, value: "0022"}}
        resources:
          requests: {{cpu: 100m, memory: 128Mi}}
        readinessProbe:
          httpGet: {{path: /healthz, port: http}}
      - name: sidecar
        image: registry.example/sidecar:2.0.0
---
apiVersion: v1
kind: Service
metadata:
  name: {svc}
  namespace: {name}
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
""",
        "routing.yaml": f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {name}
spec:
  hosts: [{name}.example.com]
  gateways: [istio-system/public]
  http:
  - name: api
    match: [{{uri: {{prefix: /api}}}}]
    retries: {{attempts: 3, perTryTimeout: 2s}}
    timeout: 10s
    route:
    - destination: {{host: {svc}, port: {{number: 80}}}}
  - name: static
    route:
    - destination: {{host: static-assets}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {svc}
  namespace: {name}
spec:
  host: {svc}
  trafficPolicy:
    connectionPool:
      http: {{http1MaxPendingRequests: 100}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 30s}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: {name}-allow
  namespace: {name}
spec:
  selector:
    matchLabels: {{app: {name}}}
  action: ALLOW
  rules:
  - from: [{{source: {{namespaces: [frontend]}}}}]
""",
    }
    return name, plan, base


def generate(root, n):
    plans = []
    for i in range(n):
        name, plan, base = app_files(i)
        d = os.path.join(root, "apps", name)
        os.makedirs(os.path.join(d, "base"))
        with open(os.path.join(d, "canaryplan.yaml"), "w") as f:
            f.write(plan)
        for fname, text in base.items():
            with open(os.path.join(d, "base", fname), "w") as f:
                f.write(text)
        plans.append(os.path.join("apps", name, "canaryplan.yaml"))
    return plans


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def timed(cmd, cwd, runs, before=None, expect=0):
    """The minimum wall-clock time of `runs` runs of `cmd`, which must exit with `expect`
    (any code when None; the last one is kept in `timed.code`)."""
    times = []
    for _ in range(runs):
        if before:
            before()
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
        timed.code = r.returncode
        if expect is not None and r.returncode != expect:
            sys.exit(f"{cmd} in {cwd}: exit {r.returncode}, expected {expect}")
    return min(times)


def peak_kib(cmd, cwd):
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, cwd=cwd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return int(out.stderr.strip().splitlines()[-1])


def ms(s):
    return f"{s * 1000:,.1f} ms"


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def render_from_scratch(work):
    r = subprocess.run([BIN, "render", "--all", "--from-scratch"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"render --all --from-scratch failed in {work}:\n{r.stderr[-3000:]}")


CAT = ["sh", "-c", "find apps -type f -exec cat {} + >/dev/null"]


def scale(args, tmp):
    """Steady-state `render --all` (overlays current) against `cat` of every file below apps/
    (plans, bases and the overlays render --all reads), for each monorepo size."""
    rows = []
    for n in args.scale:
        work = os.path.join(tmp, f"scale-{n}")
        generate(work, n)
        render_from_scratch(work)
        before = loadavg()
        render = timed([BIN, "render", "--all"], work, args.runs)
        cat = timed(CAT, work, args.runs)
        rss = peak_kib([BIN, "render", "--all"], work)
        rows.append((n, render, cat, rss, f"{before} → {loadavg()}"))
        shutil.rmtree(work, ignore_errors=True)
    print(f"### `render --all` against `cat` (min of {args.runs} runs, {os.cpu_count()} cores)\n")
    print("| plans | render --all | per plan | cat floor | ratio | peak RSS | load average (before → after) |")
    print("|---|---|---|---|---|---|---|")
    for n, render, cat, rss, load in rows:
        print(f"| {n:,} | {ms(render)} | {render * 1000 / n:.3f} ms | {ms(cat)} | {render / cat:.2f}x | {mib(rss)} | {load} |")
    print()


def kustomize(args, tmp):
    """One app's `render --stdout` against `kubectl kustomize` of its overlay, and one process
    rendering `--apps` plans against one kustomize build."""
    kubectl = shutil.which("kubectl") or sys.exit("kubectl is required")
    work = os.path.join(tmp, "kustomize")
    plans = generate(work, args.apps)
    render_from_scratch(work)
    before = loadavg()
    step = max(1, args.apps // args.sample)
    sample = plans[::step][: args.sample]
    per_app_cp, per_app_kk = [], []
    for p in sample:
        overlay = os.path.join(os.path.dirname(p), "rendered", "production")
        per_app_cp.append(timed([BIN, "render", "--stdout", "--env", "production", p], work, args.runs))
        per_app_kk.append(timed([kubectl, "kustomize", overlay], work, args.runs))
    cp, kk = statistics.median(per_app_cp), statistics.median(per_app_kk)
    render_all = [BIN, "render"] + plans
    steady = timed(render_all, work, args.runs)
    validate = timed([BIN, "validate"] + plans, work, args.runs)
    one = [BIN, "render", "--stdout", "--env", "production", plans[0]]
    kk_one = [kubectl, "kustomize", os.path.join(os.path.dirname(plans[0]), "rendered", "production")]
    mem_one, mem_all, mem_kk = peak_kib(one, work), peak_kib(render_all, work), peak_kib(kk_one, work)
    print(f"### Beside `kubectl kustomize` ({args.apps} apps, min of {args.runs} runs; per app: median over {len(sample)} apps; load average {before} → {loadavg()})\n")
    print("| what | canaryplan | kubectl kustomize | ratio | peak RSS (canaryplan / kustomize) |")
    print("|---|---|---|---|---|")
    print(f"| one app: `render --stdout --env production` vs `kubectl kustomize <its overlay>` | {ms(cp)} | {ms(kk)} | {kk / cp:.1f}x faster | {mib(mem_one)} / {mib(mem_kk)} |")
    print(f"| all {args.apps} plans in one `canaryplan render` (overlays current) vs one `kubectl kustomize` | {ms(steady)} | {ms(kk)} | {steady / kk:.2f} kustomize builds | {mib(mem_all)} / {mib(mem_kk)} |")
    print(f"| all {args.apps} plans, `canaryplan validate` | {ms(validate)} | | | |")
    print()
    shutil.rmtree(work, ignore_errors=True)


CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-{i:05d}
  labels: {{app.kubernetes.io/part-of: settings}}
data:
  LEVEL: "{i}"
  REGION: eu-west-{r}
  FEATURE_FLAGS: "checkout,search,recommendations"
"""


def limits(args, tmp):
    """A 10,000-document base file renders; a 100 MB file and alias bombs are refused (exit 2)."""
    rows = []
    base_app = os.path.join(tmp, "limits", "big")
    plan = generate(base_app, 1)[0]
    app_dir = os.path.join(base_app, os.path.dirname(plan))
    docs = "---\n".join(CONFIGMAP.format(i=i, r=i % 3) for i in range(10_000))
    with open(os.path.join(app_dir, "base", "settings.yaml"), "w") as f:
        f.write(docs)
    with open(os.path.join(app_dir, "base", "kustomization.yaml"), "a") as f:
        f.write("- settings.yaml\n")
    one = [BIN, "render", "--stdout", "--env", "production", plan]
    t = timed(one, base_app, args.runs, expect=None)
    rows.append((f"a base file of 10,000 ConfigMaps ({len(docs) / 1e6:.1f} MB), `render --stdout`", t, timed.code, peak_kib(one, base_app)))
    # 100 MB of valid YAML (the same ConfigMaps, over and over).
    with open(os.path.join(app_dir, "base", "settings.yaml"), "w") as f:
        while f.tell() < 100_000_000:
            f.write(docs)
    t = timed(one, base_app, args.runs, expect=None)
    rows.append(("a 100 MB base file, `render --stdout`", t, timed.code, peak_kib(one, base_app)))
    broken = os.path.join(ROOT, "tests", "broken")
    for case in ["34-alias-bomb", "35-deep-nesting", "46-deep-nesting-in-base"]:
        d = os.path.join(tmp, "limits", case)
        shutil.copytree(os.path.join(broken, "_base"), os.path.join(d, "base"))
        shutil.copytree(os.path.join(broken, case), d, dirs_exist_ok=True)
        t = timed([BIN, "validate"], d, args.runs, expect=None)
        rows.append((f"`tests/broken/{case}`, `validate`", t, timed.code, peak_kib([BIN, "validate"], d)))
    print(f"### Limits (min of {args.runs} runs; load average {loadavg()})\n")
    print("| input | exit code (0: rendered, 2: refused) | time | peak RSS |")
    print("|---|---|---|---|")
    for what, t, code, rss in rows:
        print(f"| {what} | {code} | {ms(t)} | {mib(rss)} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="10,100,300,1000,3000", help="monorepo sizes for the render --all vs cat table")
    ap.add_argument("--apps", type=int, default=200, help="plans rendered in one process beside kustomize")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sample", type=int, default=10, help="apps timed one by one beside kustomize")
    ap.add_argument("--only", default="scale,kustomize,limits")
    ap.add_argument("--bin", help="measure this canaryplan binary (e.g. an older build) instead of building one")
    args = ap.parse_args()
    args.scale = [int(n) for n in args.scale.split(",") if n]

    global BIN
    if args.bin:
        BIN = os.path.abspath(args.bin)
    else:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    version = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"## {version}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores\n")
    tmp = tempfile.mkdtemp(prefix="canaryplan-bench-")
    try:
        for part in args.only.split(","):
            {"scale": scale, "kustomize": kustomize, "limits": limits}[part](args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
