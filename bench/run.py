#!/usr/bin/env python3
"""canaryplan benchmark: a generated monorepo of N apps, rendered by canaryplan and built by
`kubectl kustomize`, side by side in the same run. Prints a Markdown report.

    python3 bench/run.py [--apps 200] [--runs 10] [--sample 20] [--bin OLD_BINARY]

Needs cargo and kubectl. Standard library only.
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
    name = f"app-{i:03d}"
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
spec:
  selector: {{app: {name}}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
""",
        "routing.yaml": f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
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
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: {name}-allow
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


def timed(cmd, cwd, runs, before=None):
    times = []
    for _ in range(runs):
        if before:
            before()
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_kib(cmd, cwd):
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, cwd=cwd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return int(out.stderr.strip().splitlines()[-1])


def ms(s):
    return f"{s * 1000:.1f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--sample", type=int, default=20)
    ap.add_argument("--bin", help="measure this canaryplan binary (e.g. an older build) instead of building one")
    args = ap.parse_args()

    global BIN
    if args.bin:
        BIN = os.path.abspath(args.bin)
    else:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    kubectl = shutil.which("kubectl") or sys.exit("kubectl is required")
    work = tempfile.mkdtemp(prefix="canaryplan-bench-")
    try:
        plans = generate(work, args.apps)
        rendered = [os.path.join(work, os.path.dirname(p), "rendered") for p in plans]

        def clean():
            for r in rendered:
                shutil.rmtree(r, ignore_errors=True)

        render_all = [BIN, "render"] + plans
        fresh = timed(render_all, work, args.runs, before=clean)
        subprocess.run(render_all, cwd=work, check=True, stderr=subprocess.DEVNULL)
        steady = timed(render_all, work, args.runs)
        validate = timed([BIN, "validate"] + plans, work, args.runs)
        # The filesystem's floor for a fresh render: copying the same overlays with cp.
        copies = os.path.join(work, "copies")

        def clean_copies():
            shutil.rmtree(copies, ignore_errors=True)
            os.makedirs(copies)

        copy_cmd = ["sh", "-c", 'for d in apps/*; do cp -r "$d/rendered" "copies/${d#apps/}"; done']
        copy = timed(copy_cmd, work, max(3, args.runs // 3), before=clean_copies)
        step = max(1, args.apps // args.sample)
        sample = plans[::step][: args.sample]
        per_app_cp, per_app_kk = [], []
        for p in sample:
            overlay = os.path.join(os.path.dirname(p), "rendered", "production")
            per_app_cp.append(timed([BIN, "render", "--stdout", "--env", "production", p], work, args.runs))
            per_app_kk.append(timed([kubectl, "kustomize", overlay], work, args.runs))
        cp, kk = statistics.median(per_app_cp), statistics.median(per_app_kk)
        mem_all = peak_kib(render_all, work)
        mem_one = peak_kib([BIN, "render", "--stdout", "--env", "production", plans[0]], work)
        mem_kk = peak_kib([kubectl, "kustomize", os.path.join(os.path.dirname(plans[0]), "rendered", "production")], work)

        limits = []
        broken = os.path.join(ROOT, "tests", "broken")
        for case in ["34-alias-bomb", "35-deep-nesting", "46-deep-nesting-in-base"]:
            d = os.path.join(work, "limits", case)
            shutil.copytree(os.path.join(broken, "_base"), os.path.join(d, "base"))
            shutil.copytree(os.path.join(broken, case), d, dirs_exist_ok=True)
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                r = subprocess.run([BIN, "validate"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.perf_counter() - t)
                assert r.returncode == 2, case
            limits.append((case, statistics.median(times)))

        print(f"## {args.apps} apps, median of {args.runs} runs, {os.cpu_count()} cores\n")
        print("| what | canaryplan | kubectl kustomize | ratio |")
        print("|---|---|---|---|")
        print(f"| one app, final stream (`render --stdout --env production` vs `kubectl kustomize <overlay>`; median over {len(sample)} apps) | {ms(cp)} | {ms(kk)} | {kk / cp:.1f}x faster |")
        print(f"| all {args.apps} plans in one `canaryplan render` (fresh: no overlays on disk) vs one `kubectl kustomize` | {ms(fresh)} | {ms(kk)} | {kk / fresh:.2f}x |")
        print(f"| reference: `cp -r` of those {args.apps * 2} overlays (the filesystem's cost of creating the files) | {ms(copy)} | | |")
        print(f"| all {args.apps} plans in one `canaryplan render` (steady state: overlays current) vs one `kubectl kustomize` | {ms(steady)} | {ms(kk)} | {kk / steady:.2f}x |")
        print(f"| all {args.apps} plans, `canaryplan validate` | {ms(validate)} | | |")
        print(f"| peak memory (max RSS): one app / all {args.apps} plans / one kustomize | {mem_one / 1024:.1f} MiB / {mem_all / 1024:.1f} MiB | {mem_kk / 1024:.1f} MiB | |")
        for case, t in limits:
            print(f"| refusal of `tests/broken/{case}` (exit 2) | {ms(t)} | | |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
