//! Metric gates against a REAL Prometheus server (Debian's `prometheus` package) behind TLS
//! with a CA the test makes (`openssl` on the machine) and Basic auth (`--web.config.file`):
//! the test writes known series as OpenMetrics, turns them into TSDB blocks with `promtool`,
//! starts Prometheus on a free loopback port over them, and runs `canaryplan gate`,
//! `promote --gate`, `validate` and `status` as a user would. A tiny loopback server stands in
//! only for what Prometheus cannot do (redirects, drip-fed, oversized or warning answers,
//! bearer tokens).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const USER: &str = "canary";
/// Prometheus's web config keeps only a bcrypt hash of it (`PASSWORD_HASH`, cost 4).
const PASSWORD: &str = "gate-test-password";
const PASSWORD_HASH: &str = "$2b$04$zC1tE2vQMXvEAgYIVg5E9uduCbyPEre5JhOApaZB1Smnbh2D7rHYG";

/// A Prometheus server over a temporary TSDB, with TLS and Basic auth, stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// The URL a plan names: no credentials in a reviewed file.
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
    fn with_credentials(&self) -> String {
        format!("https://{USER}:{PASSWORD}@127.0.0.1:{}", self.port)
    }
    fn ca(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }
    /// `canaryplan <args>` in `s`, reaching this server with its credentials and CA.
    fn run(&self, s: &Scratch, args: &[&str]) -> Run {
        let (url, ca) = (self.with_credentials(), self.ca());
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--prometheus", &url, "--ca-file", &ca]);
        let r = s.run(&all);
        assert!(
            !r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD),
            "the password was printed:\n{}{}",
            r.stdout,
            r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        r
    }
    /// A GET of the HTTP API as an administrator would make it (curl-like, via ureq).
    fn api(&self, path_and_query: &str) -> serde_json::Value {
        let pem = std::fs::read(self.dir.path().join("ca.pem")).unwrap();
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            )
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let auth = format!("Basic {}", b64(format!("{USER}:{PASSWORD}").as_bytes()));
        match agent
            .get(format!("{}{path_and_query}", self.url()))
            .header("Authorization", &auth)
            .call()
        {
            Ok(mut r) => serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                .unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    path.to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Per-second rates of `istio_requests_total` for the runbook's Service, by canary version and
/// response code, over the last 20 minutes (`ago` is how many seconds before now):
/// - v2 healthy: 200 at 20/s, 503 at 0.1/s (success rate 20/20.1 = 0.995)
/// - v3 idle: a series that never grows (a ratio is NaN)
/// - v4 failing: 200 at 9/s, 500 at 1/s (0.9; `sum by (response_code)` gives two series)
/// - v5 quiet: 200 at 0.01/s (all good, but 3 requests in 5 minutes)
/// - v6 degrading: 10/s of 200 until 10 minutes ago, then half of it 500
fn rate(version: &str, code: &str, ago: u64) -> f64 {
    match (version, code) {
        ("v2", "200") => 20.0,
        ("v2", "503") => 0.1,
        ("v3", "200") => 0.0,
        ("v4", "200") => 9.0,
        ("v4", "500") => 1.0,
        ("v5", "200") => 0.01,
        ("v6", "200") if ago > 600 => 10.0,
        ("v6", "200") => 5.0,
        ("v6", "500") if ago > 600 => 0.0,
        ("v6", "500") => 5.0,
        _ => 0.0,
    }
}

fn openmetrics(now: u64) -> String {
    let mut out = String::from("# TYPE istio_requests_total counter\n");
    let series = [
        ("v2", "200"),
        ("v2", "503"),
        ("v3", "200"),
        ("v4", "200"),
        ("v4", "500"),
        ("v5", "200"),
        ("v6", "200"),
        ("v6", "500"),
    ];
    for (version, code) in series {
        let mut value = 1000.0;
        for i in 0..=80u64 {
            let t = now - 1200 + i * 15;
            if i > 0 {
                value += rate(version, code, now - t) * 15.0;
            }
            out.push_str(&format!(
                "istio_requests_total{{destination_service_name=\"my-service-web\",destination_version=\"{version}\",response_code=\"{code}\"}} {value} {t}\n"
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the machine's openssl.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=canaryplan test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> Option<Prometheus> {
    let (prometheus, promtool) = (tool("prometheus"), tool("promtool"));
    if !available(
        "the prometheus server (and promtool, openssl)",
        prometheus.is_some() && promtool.is_some() && tool("openssl").is_some(),
        "install Debian's packages: `apt-get install prometheus openssl` (.ci/run does)",
    ) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("series.om");
    std::fs::write(&input, openmetrics(now())).unwrap();
    let data = dir.path().join("data");
    let made = Command::new(promtool.unwrap())
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    make_certificates(dir.path());
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {d}/server.pem\n  key_file: {d}/server.key\nbasic_auth_users:\n  {USER}: '{PASSWORD_HASH}'\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(prometheus.unwrap())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.config.file={}", web.display()))
        .arg("--storage.tsdb.retention.time=1d")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Prometheus { child, port, dir };
    // Ready, and the blocks loaded: the series answer.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = server.api("/api/v1/query?query=count(istio_requests_total)");
        if v["data"]["result"][0]["value"][1] == "8" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not come up with the series: {}",
            std::fs::read_to_string(server.dir.path().join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    Some(server)
}

/// The runbook at shift 5 (production), with an analysis of `metrics` (plus `extra` analysis
/// lines) against `url`, and the canary version `canary`.
fn plan_with(url: &str, canary: &str, extra: &str, metrics: &str) -> Scratch {
    let s = Scratch::fixture("runbook");
    s.edit_plan(|p| {
        p.replacen("  canary:\n    version: v2\n", &format!("  canary:\n    version: {canary}\n"), 1)
            .replacen(
                "  environments:\n",
                &format!("  analysis:\n    prometheus: {url}\n    interval: 5m\n{extra}    metrics:\n{metrics}  environments:\n"),
                1,
            )
    });
    s
}

const SUCCESS_RATE: &str = "    - name: success-rate\n      query: |\n        sum(rate(istio_requests_total{destination_service_name=\"{{ service }}\",destination_version=\"{{ canary.version }}\",response_code!~\"5..\"}[{{ interval }}]))\n        / sum(rate(istio_requests_total{destination_service_name=\"{{ service }}\",destination_version=\"{{ canary.version }}\"}[{{ interval }}]))\n";

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{}{}", r.stdout, r.stderr))
}

#[test]
fn the_gate_measures_on_a_real_prometheus_behind_tls_and_basic_auth() {
    let Some(p) = start() else { return };
    let env = "production";
    // 0.995 >= 0.99: pass, exit 0; the table shows the server without credentials.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        &format!("{SUCCESS_RATE}      min: 0.99\n"),
    );
    let r = p.run(&s, &["gate", "--env", env]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for part in ["success-rate", "0.9950", ">= 0.99", "pass", "verdict: pass"] {
        assert!(r.stdout.contains(part), "{part}\n{}", r.stdout);
    }
    assert!(
        r.stdout
            .starts_with(&format!("prometheus: {}  (one sample, now)", p.url())),
        "{}",
        r.stdout
    );
    // -v: the query as sent, with the plan's values, and each sample.
    let r = p.run(&s, &["gate", "--env", env, "-v"]);
    assert!(
        r.stdout.contains("query: sum(rate(istio_requests_total{destination_service_name=\"my-service-web\",destination_version=\"v2\"")
            && r.stdout.contains("sample @"),
        "{}",
        r.stdout
    );
    let j = json(&p.run(&s, &["gate", "--env", env, "--format", "json"]));
    assert_eq!(j["passed"], true);
    assert_eq!(j["verdict"], "pass");
    assert_eq!(j["prometheus"], p.url());
    assert!((j["metrics"][0]["value"].as_f64().unwrap() - 20.0 / 20.1).abs() < 1e-9);

    // 0.995 < 0.999: fail, exit 1.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        &format!("{SUCCESS_RATE}      min: 0.999\n"),
    );
    let r = p.run(&s, &["gate", "--env", env]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("FAIL"), "{}", r.stdout);

    // No series, and a ratio of nothing (NaN): inconclusive (exit 3), never a pass.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        "    - name: absent\n      query: sum(rate(istio_requests_total{destination_version=\"v9\"}[5m]))\n      max: 1\n    - name: nan\n      query: sum(rate(istio_requests_total{destination_version=\"v3\",response_code=\"200\"}[5m])) / sum(rate(istio_requests_total{destination_version=\"v3\"}[5m]))\n      min: 0\n",
    );
    let r = p.run(&s, &["gate", "--env", env]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    for part in [
        "no data: the query returned no series",
        "no data: the value is NaN",
        "verdict: inconclusive",
    ] {
        assert!(r.stdout.contains(part), "{part}\n{}", r.stdout);
    }

    // +Inf (a division by zero) meets `min: 0.99` numerically but is never a pass.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        "    - name: inf\n      query: sum(rate(istio_requests_total{destination_version=\"v2\"}[5m])) / (sum(rate(istio_requests_total{destination_version=\"v2\"}[5m])) * 0)\n      min: 0.99\n",
    );
    let r = p.run(&s, &["gate", "--env", env]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("is not a measurement"), "{}", r.stdout);

    // A query Prometheus refuses: exit 2, the error beside the row, located at the query.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        "    - name: broken\n      query: sum(rate(istio_requests_total[5m]\n      min: 0\n",
    );
    let r = p.run(&s, &["gate", "--env", env]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("ERROR")
            && r.stdout.contains("Prometheus answered with an error")
            && r.stdout.contains("[query at canaryplan.yaml:"),
        "{}",
        r.stdout
    );

    // A wrong password: exit 2, said so, the password nowhere.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        &format!("{SUCCESS_RATE}      min: 0.99\n"),
    );
    let wrong = format!("https://{USER}:not-{PASSWORD}@127.0.0.1:{}", p.port);
    let r = s.run(&[
        "gate",
        "--env",
        env,
        "--prometheus",
        &wrong,
        "--ca-file",
        &p.ca(),
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("HTTP 401 (unauthorized"), "{}", r.stdout);
    assert!(!format!("{}{}", r.stdout, r.stderr).contains("not-gate-test"));

    // The private CA: without it the certificate is refused; --ca-file or the system trust
    // store (SSL_CERT_FILE) makes it trusted.
    let creds = p.with_credentials();
    let r = s.run(&["gate", "--env", env, "--prometheus", &creds]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("UnknownIssuer"), "{}", r.stdout);
    let r = run_in(
        s.path(),
        &["gate", "--env", env],
        &[
            ("CANARYPLAN_PROMETHEUS_URL", creds.as_str()),
            ("SSL_CERT_FILE", p.ca().as_str()),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains(PASSWORD));
}

#[test]
fn a_failing_metric_is_not_hidden_by_one_that_errs() {
    let Some(p) = start() else { return };
    let env = "production";
    // v4 fails its success rate; the by-code breakdown returns one series per code exactly
    // because it fails. The failure decides: exit 1, the error reported beside it.
    let metrics = format!(
        "{SUCCESS_RATE}      min: 0.99\n    - name: by-code\n      query: sum by (response_code) (rate(istio_requests_total{{destination_version=\"{{{{ canary.version }}}}\"}}[5m]))\n      max: 100\n"
    );
    let s = plan_with(&p.url(), "v4", "", &metrics);
    let r = p.run(&s, &["gate", "--env", env]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("0.9000") && r.stdout.contains("FAIL"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("2 series, where one number was expected") && r.stdout.contains("ERROR"),
        "{}",
        r.stdout
    );
    // promote --gate --on-fail abort aborts: the same edit as `abort`.
    let r = p.run(
        &s,
        &["promote", "--env", env, "--gate", "--on-fail", "abort"],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("the gate failed: aborting"),
        "{}",
        r.stderr
    );
    let abort = plan_with(&p.url(), "v4", "", &metrics);
    abort.run(&["abort", "--env", env]).ok();
    assert_eq!(s.read("canaryplan.yaml"), abort.read("canaryplan.yaml"));
}

#[test]
fn promote_moves_the_weight_only_when_the_gate_holds() {
    let Some(p) = start() else { return };
    let env = "production";
    let passing = format!("{SUCCESS_RATE}      min: 0.99\n");
    let gated = plan_with(&p.url(), "v2", "", &passing);
    let plain = plan_with(&p.url(), "v2", "", &passing);
    p.run(&gated, &["promote", "--env", env, "--gate"]).ok();
    plain.run(&["promote", "--env", env]).ok();
    assert_eq!(gated.read("canaryplan.yaml"), plain.read("canaryplan.yaml"));
    assert!(gated.read("canaryplan.yaml").contains("weight: 25"));

    // Failing without --on-fail: nothing changes, exit 1.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        &format!("{SUCCESS_RATE}      min: 0.999\n"),
    );
    let before = s.read("canaryplan.yaml");
    let r = p.run(&s, &["promote", "--env", env, "--gate"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("the gate failed: nothing changed"),
        "{}",
        r.stderr
    );
    assert_eq!(s.read("canaryplan.yaml"), before, "byte-identical");

    // Too little traffic (v5: 3 requests in the window, minRequests 100) is inconclusive:
    // neither promote nor abort, exit 3, said so.
    let quiet = "    requests: sum(increase(istio_requests_total{destination_service_name=\"{{ service }}\",destination_version=\"{{ canary.version }}\"}[{{ interval }}]))\n    minRequests: 100\n";
    let s = plan_with(&p.url(), "v5", quiet, &passing);
    let before = s.read("canaryplan.yaml");
    let r = p.run(
        &s,
        &["promote", "--env", env, "--gate", "--on-fail", "abort"],
    );
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("too little traffic")
            && r.stderr.contains("inconclusive: nothing changed"),
        "{}",
        r.stderr
    );
    assert_eq!(s.read("canaryplan.yaml"), before);
    // The same with enough traffic (v2) passes.
    let s = plan_with(&p.url(), "v2", quiet, &passing);
    assert_eq!(p.run(&s, &["gate", "--env", env]).code, 0);

    // Unreachable: exit 2, nothing edited, nothing aborted.
    let s = plan_with("http://127.0.0.1:9", "v2", "", &passing);
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["promote", "--env", env, "--gate", "--on-fail", "abort"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("did not answer"), "{}", r.stderr);
    assert_eq!(s.read("canaryplan.yaml"), before);
}

#[test]
fn samples_limits_and_conditions_as_argo_rollouts_counts_them() {
    let Some(p) = start() else { return };
    let env = "production";
    // Three live samples a second apart (`--once`: one).
    let s = plan_with(
        &p.url(),
        "v2",
        "    count: 3\n",
        "    - name: rate\n      query: sum(rate(istio_requests_total{destination_version=\"v2\",response_code=\"200\"}[5m]))\n      min: 19\n",
    );
    s.edit_plan(|t| t.replace("interval: 5m", "interval: 1s"));
    let started = Instant::now();
    let j = json(&p.run(&s, &["gate", "--env", env, "--format", "json"]));
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(j["metrics"][0]["samples"].as_array().unwrap().len(), 3);
    assert_eq!(j["sampling"], "3 samples, 1s apart");
    assert_eq!(j["verdict"], "pass");
    let j = json(&p.run(&s, &["gate", "--env", env, "--format", "json", "--once"]));
    assert_eq!(j["metrics"][0]["samples"].as_array().unwrap().len(), 1);

    // Errors: more than consecutiveErrorLimit in a row fail the metric (exit 1); fewer leave
    // it unmeasured (exit 2).
    let broken =
        "    - name: broken\n      query: sum(rate(istio_requests_total[5m]\n      min: 0\n";
    let s = plan_with(
        &p.url(),
        "v2",
        "    count: 3\n    consecutiveErrorLimit: 1\n",
        broken,
    );
    s.edit_plan(|t| t.replace("interval: 5m", "interval: 1s"));
    let r = p.run(&s, &["gate", "--env", env]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("3 errors in a row (consecutiveErrorLimit 1)"),
        "{}",
        r.stdout
    );
    let s = plan_with(&p.url(), "v2", "    count: 3\n", broken);
    s.edit_plan(|t| t.replace("interval: 5m", "interval: 1s"));
    assert_eq!(p.run(&s, &["gate", "--env", env]).code, 2);

    // Conditions: a band between successCondition and failureCondition is inconclusive.
    let cond = |success: &str, failure: &str| {
        let mut m = String::from(SUCCESS_RATE);
        if !success.is_empty() {
            m.push_str(&format!("      successCondition: \"{success}\"\n"));
        }
        if !failure.is_empty() {
            m.push_str(&format!("      failureCondition: \"{failure}\"\n"));
        }
        let s = plan_with(&p.url(), "v2", "", &m);
        p.run(&s, &["gate", "--env", env]).code
    };
    assert_eq!(cond("result >= 0.99 && result <= 1", ""), 0);
    assert_eq!(cond("result >= 0.999", ""), 1);
    assert_eq!(cond("result >= 0.999", "result < 0.99"), 3);
    assert_eq!(cond("", "result < 0.999"), 1);
    assert_eq!(cond("", "!(result >= 0.99)"), 0);
    // A condition that is not an expression is refused where it is written.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        &format!("{SUCCESS_RATE}      successCondition: \"result >=\"\n"),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(r.stderr.contains("is not an expression"), "{}", r.stderr);
}

fn git(dir: &Path, args: &[&str], ago: Option<u64>) {
    let mut c = Command::new("git");
    c.args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example");
    if let Some(ago) = ago {
        let when = format!("@{} +0000", now() - ago);
        c.env("GIT_AUTHOR_DATE", &when)
            .env("GIT_COMMITTER_DATE", &when);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The plan committed `ago` seconds ago, in a fresh repository.
fn commit_ago(s: &Scratch, ago: u64) {
    if !s.path().join(".git").exists() {
        git(s.path(), &["init", "-q"], None);
    }
    git(s.path(), &["add", "-A"], None);
    git(s.path(), &["commit", "-q", "-m", "step"], Some(ago));
}

#[test]
fn promote_waits_out_the_pause_since_the_commit_that_set_the_weight() {
    let env = "production";
    let s = Scratch::fixture("runbook");
    s.edit_plan(|t| {
        t.replace(
            "steps: [1, 5, 25, 50, 100]",
            "steps: [1, {weight: 5, pause: 20m}, 25, {weight: 50, pause: manual}, 100]",
        )
    });
    // No history: the pause cannot be told, so promote refuses unless forced.
    let r = s.run(&["promote", "--env", env]);
    r.fails();
    assert!(
        r.stderr
            .contains("must soak at weight 5 for 20m, but the plan is not in a git repository")
            && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    // Weight 1 an hour ago, weight 5 ten minutes ago: 10 of the 20 minutes left.
    set_weight(&s, 5, 1);
    commit_ago(&s, 3600);
    set_weight(&s, 1, 5);
    commit_ago(&s, 600);
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["promote", "--env", env]);
    r.fails();
    assert!(
        r.stderr.contains("soaks at weight 5 for 20m after commit")
            && r.stderr.contains("(10m ago): 10m left"),
        "{}",
        r.stderr
    );
    assert_eq!(s.read("canaryplan.yaml"), before);
    let st = s.run(&["status", "--env", env]);
    assert!(
        st.stdout.contains("soaking: 10m of the 20m pause left"),
        "{}",
        st.stdout
    );
    // Later commits that do not change the weight (another file, the pause itself) do not
    // restart the soak: with a 5m pause, the 10 minutes since the weight's commit suffice.
    s.write("notes.txt", "x");
    commit_ago(&s, 60);
    assert!(s.run(&["promote", "--env", env]).stderr.contains("m left"));
    s.edit_plan(|t| t.replace("{weight: 5, pause: 20m}", "{weight: 5, pause: 5m}"));
    commit_ago(&s, 30);
    s.run(&["promote", "--env", env]).ok();
    commit_ago(&s, 0);
    // An uncommitted weight (back to 5, say) has not started soaking.
    set_weight(&s, 25, 5);
    let r = s.run(&["promote", "--env", env]);
    r.fails();
    assert!(r.stderr.contains("is not committed yet"), "{}", r.stderr);
    set_weight(&s, 5, 50);
    // pause: manual needs an approval, however long ago the weight was set.
    commit_ago(&s, 7200);
    let r = s.run(&["promote", "--env", env]);
    r.fails();
    assert!(r.stderr.contains("until a person approves"), "{}", r.stderr);
    assert!(
        s.run(&["status", "--env", env])
            .stdout
            .contains("paused until approved")
    );
    s.run(&["promote", "--env", env, "--approve"]).ok();
    set_weight(&s, 100, 100);
    // --force stands in for missing history only.
    let fresh = Scratch::fixture("runbook");
    fresh.edit_plan(|t| t.replace("steps: [1, 5, 25", "steps: [1, {weight: 5, pause: 1h}, 25"));
    let r = fresh.run(&["promote", "--env", env, "--force"]);
    r.ok();
    assert!(
        r.stderr.contains("was not checked (--force)"),
        "{}",
        r.stderr
    );
}

/// Production's weight `from` → `to` (panics when it is not `from`).
fn set_weight(s: &Scratch, from: u8, to: u8) {
    let at = |w: u8| format!("my-service.example.net]\n      stage: shift\n      weight: {w}\n");
    let text = s.read("canaryplan.yaml");
    assert!(
        text.contains(&at(from)),
        "production is not at {from}:\n{text}"
    );
    s.write("canaryplan.yaml", &text.replacen(&at(from), &at(to), 1));
}

#[test]
fn the_gate_samples_span_the_pause() {
    let Some(p) = start() else { return };
    let env = "production";
    // v6 degrades 10 minutes ago; its weight was committed 16 minutes ago with a 15m pause.
    // Four samples across those 16 minutes: the first healthy, the last three failing.
    let metric = "    - name: success-rate\n      query: sum(rate(istio_requests_total{destination_version=\"{{ canary.version }}\",response_code!~\"5..\"}[1m])) / sum(rate(istio_requests_total{destination_version=\"{{ canary.version }}\"}[1m]))\n      min: 0.99\n";
    let gated = |limit: u32| {
        let s = plan_with(
            &p.url(),
            "v6",
            &format!("    count: 4\n    failureLimit: {limit}\n"),
            metric,
        );
        s.edit_plan(|t| t.replace("steps: [1, 5, 25", "steps: [1, {weight: 5, pause: 15m}, 25"));
        commit_ago(&s, 960);
        s
    };
    let s = gated(2);
    let j = json(&p.run(&s, &["gate", "--env", env, "--format", "json"]));
    assert_eq!(j["verdict"], "fail", "{j}");
    assert!(
        j["sampling"]
            .as_str()
            .unwrap()
            .contains("4 samples over the 16m"),
        "{j}"
    );
    let results: Vec<&str> = j["metrics"][0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["pass", "fail", "fail", "fail"]);
    // Three failures allowed: it passes, and promote moves on (the pause has passed).
    let s = gated(3);
    p.run(&s, &["promote", "--env", env, "--gate"]).ok();
    assert!(s.read("canaryplan.yaml").contains("weight: 25"));
}

#[test]
fn no_value_a_base_or_plan_substitutes_can_change_a_query() {
    let Some(p) = start() else { return };
    // The issue's namespace, in the base's kustomization: refused, located, before any query.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        &format!("{SUCCESS_RATE}      min: 0.99\n"),
    );
    s.edit_plan(|t| {
        t.replace(
            "destination_version=",
            "destination_service_namespace=\"{{ namespace }}\",destination_version=",
        )
    });
    s.run(&["validate"]).ok();
    let k = s.read("base/kustomization.yaml");
    s.write(
        "base/kustomization.yaml",
        &k.replace(
            "namespace: my-service",
            "namespace: 'x\"}[5m])) * 0 or vector(0) #'",
        ),
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:") && r.stderr.contains("is not a DNS-1123 label"),
        "{}",
        r.stderr
    );
    let r = p.run(&s, &["gate", "--env", "production"]);
    r.fails();

    // Whatever a value holds, it lands in the string it is written in, byte for byte: the
    // real PromQL parser (Prometheus's) reads it back as exactly that label value, and the
    // query around it keeps its shape.
    let hostile = [
        "x\"}[5m])) * 0 or vector(0) #",
        "a\\\"b",
        "back\\slash\\",
        "new\nline\ttab\r",
        "\u{1b}[31mred",
        "{{ service }}",
        "'single' `back`",
        "ünïcödé ✓",
    ];
    for value in hostile {
        let values = |ns: &str| {
            let v = canaryplan::analysis::QueryValues {
                plan: "p",
                environment: "production",
                service: "my-service-web",
                namespace: ns,
                workload: "web",
                canary_version: "v2",
                stable_version: "v1",
                interval: "5m",
            };
            (
                canaryplan::analysis::render_query(
                    "label_replace(vector(1), \"got\", \"{{ namespace }}\", \"\", \"\")",
                    &v,
                )
                .unwrap(),
                canaryplan::analysis::render_query(
                    "sum(rate(istio_requests_total{destination_service_namespace=\"{{ namespace|promql_string }}\",destination_version=\"{{ canary.version }}\"}[{{ interval }}]))",
                    &v,
                )
                .unwrap(),
            )
        };
        let (echo, query) = values(value);
        let enc = |q: &str| q.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
        let got = p.api(&format!("/api/v1/query?query={}", enc(&echo)));
        assert_eq!(got["status"], "success", "{value:?}: {echo} → {got}");
        assert_eq!(got["data"]["result"][0]["metric"]["got"], value, "{echo}");
        // The formatted query equals the one with a harmless value, but for the value.
        let (_, plain) = values("PLACEHOLDER");
        let a = p.api(&format!("/api/v1/format_query?query={}", enc(&query)));
        let b = p.api(&format!("/api/v1/format_query?query={}", enc(&plain)));
        // Prometheus breaks long queries over lines: compare without the layout.
        let flat = |v: &serde_json::Value| {
            v["data"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .collect::<String>()
        };
        let (a, b) = (flat(&a), flat(&b));
        let (prefix, suffix) = b.split_once("\"PLACEHOLDER\"").unwrap();
        assert!(
            a.starts_with(prefix) && a.ends_with(suffix),
            "{value:?}: the query around the value changed:\n{a}\n{b}"
        );
        let literal = &a[prefix.len()..a.len() - suffix.len()];
        assert!(
            literal.len() >= 2 && literal.starts_with('"') && literal.ends_with('"'),
            "{value:?}: {literal}"
        );
        assert!(b.contains("\"PLACEHOLDER\""));
    }

    // Per-environment templates are checked with each real environment: a query empty in
    // production is refused by validate.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        "    - name: staging-only\n      query: \"{% if environment == 'staging' %}sum(up){% endif %}\"\n      min: 0\n",
    );
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("renders empty for environment `production`"),
        "{}",
        r.stderr
    );
    // An unknown variable is named.
    let s = plan_with(
        &p.url(),
        "v2",
        "",
        &format!("{SUCCESS_RATE}      min: 0.99\n"),
    );
    s.edit_plan(|t| {
        t.replace(
            "{{ canary.version }}\",response_code",
            "{{ canary.tag }}\",response_code",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("`canary.tag` is not a variable a query can use"),
        "{}",
        r.stderr
    );
}

/// What the tiny server answers.
enum Reply {
    Json(u16, String),
    Redirect(String),
    /// Far more than the gate reads.
    Huge,
    /// A valid answer, one byte every 200 ms.
    Drip(String),
}

/// A loopback HTTP server for what Prometheus cannot do; `handler` sees the request head.
fn tiny(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = std::sync::Arc::new(handler);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let send = |c: &mut std::net::TcpStream, status: u16, extra: &str, body: &[u8]| {
                    let _ = write!(
                        c,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                        body.len()
                    );
                    let _ = c.write_all(body);
                };
                match handler(&head) {
                    Reply::Json(status, body) => send(&mut c, status, "", body.as_bytes()),
                    Reply::Redirect(to) => send(&mut c, 302, &format!("Location: {to}\r\n"), b""),
                    Reply::Huge => {
                        let _ = write!(
                            c,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{{\"status\":\"success\",\"data\":\""
                        );
                        let chunk = vec![b'a'; 1 << 16];
                        for _ in 0..200 {
                            if c.write_all(&chunk).is_err() {
                                break;
                            }
                        }
                    }
                    Reply::Drip(body) => {
                        let _ = write!(
                            c,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        for b in body.bytes() {
                            if c.write_all(&[b]).is_err() {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            });
        }
    });
    port
}

const ONE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.995"]}]}}"#;

#[test]
fn the_gate_refuses_what_a_server_should_not_do() {
    let env = "production";
    let metric = "    - name: m\n      query: sum(up)\n      min: 0.99\n";
    let gate = |url: &str, extra: &[&str]| {
        let s = plan_with(url, "v2", "", metric);
        let mut args = vec!["gate", "--env", env, "--timeout", "3s"];
        args.extend(extra);
        let r = s.run(&args);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        r
    };
    // A bearer token from a file, and a tenant header for Mimir/Cortex: the server answers
    // only when both arrive; the token is never printed.
    let port = tiny(|head| {
        let h = head.to_ascii_lowercase();
        if h.contains("authorization: bearer tok-123\r\n")
            && h.contains("x-scope-orgid: team-a\r\n")
        {
            Reply::Json(200, ONE.into())
        } else {
            Reply::Json(
                401,
                "{\"status\":\"error\",\"error\":\"who are you? tok-123\"}".to_string(),
            )
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let r = gate(
        &url,
        &[
            "--token-file",
            token.to_str().unwrap(),
            "--header",
            "X-Scope-OrgID: team-a",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = gate(&url, &["--token-file", token.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("HTTP 401") && !r.stdout.contains("tok-123"),
        "{}",
        r.stdout
    );
    let s = plan_with(&url, "v2", "", metric);
    let r = run_in(
        s.path(),
        &["gate", "--env", env],
        &[
            ("CANARYPLAN_PROMETHEUS_TOKEN_FILE", token.to_str().unwrap()),
            ("CANARYPLAN_PROMETHEUS_HEADERS", "X-Scope-OrgID: team-a"),
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // Redirects: within the origin followed, to another origin refused and reported.
    let elsewhere = tiny(|_| Reply::Json(200, ONE.into()));
    let port = tiny(move |head| {
        if head.starts_with("GET /api/v1/query") {
            if head.contains("away") {
                Reply::Json(500, "{}".into())
            } else {
                Reply::Redirect("/prom/api/v1/query?query=sum(up)".to_string())
            }
        } else if head.starts_with("GET /prom/") {
            Reply::Json(200, ONE.into())
        } else {
            Reply::Json(404, "{}".into())
        }
    });
    let r = gate(&format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let port = tiny(move |_| {
        Reply::Redirect(format!(
            "http://localhost:{elsewhere}/api/v1/query?query=sum(up)"
        ))
    });
    let r = gate(&format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("another origin than http://127.0.0.1:"),
        "{}",
        r.stdout
    );

    // Terminal escapes in server text are shown as text.
    let port = tiny(|_| {
        Reply::Json(400, "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"\\u001b[2J\\u001b]0;pwned\\u0007boom\"}".into())
    });
    let r = gate(&format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(r.code, 2);
    assert!(
        !r.stdout.contains('\u{1b}') && !r.stdout.contains('\u{7}'),
        "{:?}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\\u{1b}[2J") && r.stdout.contains("boom"),
        "{}",
        r.stdout
    );

    // An oversized answer is reported as such, not as broken JSON.
    let port = tiny(|_| Reply::Huge);
    let r = gate(&format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("an answer larger than 4 MiB"),
        "{}",
        r.stdout
    );

    // A drip-fed answer meets the run's one deadline.
    let port = tiny(|_| Reply::Drip(ONE.into()));
    let started = Instant::now();
    let r = gate(&format!("http://127.0.0.1:{port}"), &[]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("within the gate's deadline (3s"),
        "{}",
        r.stdout
    );

    // Prometheus/Thanos warnings (a partial answer) are inconclusive unless allowPartial.
    let port = tiny(|head| {
        assert!(head.contains("partial_response="), "{head}");
        Reply::Json(
            200,
            ONE.replace("}]}}", "}]},\"warnings\":[\"store eu-1 unavailable\"]}"),
        )
    });
    let url = format!("http://127.0.0.1:{port}");
    let r = gate(&url, &[]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("a partial answer (warnings: store eu-1 unavailable)"),
        "{}",
        r.stdout
    );
    let s = plan_with(&url, "v2", "    allowPartial: true\n", metric);
    assert_eq!(s.run(&["gate", "--env", env]).code, 0);

    // The plan's URL: http(s), no query string, no credentials shown back.
    for (url, why) in [
        ("ftp://127.0.0.1:9090", "is not http or https"),
        ("http://127.0.0.1:9090/?evil=1", "no query string"),
    ] {
        let s = plan_with(url, "v2", "", metric);
        let r = s.run(&["validate"]);
        r.fails();
        assert!(r.stderr.contains(why), "{}", r.stderr);
    }
}

#[test]
fn a_closed_pipe_is_exit_2_not_a_panic() {
    let port = tiny(|_| Reply::Json(200, ONE.into()));
    let s = plan_with(
        &format!("http://127.0.0.1:{port}"),
        "v2",
        "",
        "    - name: m\n      query: sum(up)\n      min: 0.99\n",
    );
    // `gate 2>&1 | head -c0`: both streams go to a pipe nobody reads any more.
    let mut child = Command::new(bin())
        .args(["gate", "--env", "production", "-v"])
        .current_dir(s.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
}

#[test]
fn the_readme_analysis_is_a_valid_plan_section() {
    // The analysis example of docs/gate.md (once in the README).
    let page = std::fs::read_to_string(root().join("docs/gate.md")).unwrap();
    let section = &page[page.find("# Metric gates").unwrap()..];
    let block = section.split("```yaml\n").nth(1).unwrap();
    let block = &block[..block.find("```").unwrap()];
    let analysis = block.strip_prefix("spec:\n").unwrap();
    let s = Scratch::fixture("runbook");
    s.edit_plan(|p| {
        p.replacen(
            "  environments:\n",
            &format!("{analysis}  environments:\n"),
            1,
        )
    });
    s.run(&["validate"]).ok();
    // The example workflow promotes behind the gate and rolls back as a commit.
    let workflow =
        std::fs::read_to_string(root().join("examples/progressive-delivery.yaml")).unwrap();
    let parsed = parse_stream(&workflow);
    assert_eq!(parsed[0]["on"]["schedule"][0]["cron"], "*/15 * * * *");
    assert!(workflow.contains("canaryplan promote \"$plan\" --env \"${{ vars.CANARYPLAN_ENV }}\" --gate --on-fail abort --render"));
}
