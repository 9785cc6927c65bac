//! Metric gates against a REAL Prometheus server (Debian's `prometheus` package): the test
//! writes known series as OpenMetrics, turns them into TSDB blocks with `promtool`, starts
//! Prometheus on a free loopback port over them, and runs `canaryplan gate` and
//! `promote --gate` as a user would: pass, fail, no data, NaN, a bad query, an unreachable
//! server; a failing gate leaves the plan byte-identical, a passing one edits only the weight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// A Prometheus server over a temporary TSDB, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    path.to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Series of `istio_requests_total` for the runbook's Service over the last 20 minutes, every
/// 15 s: v2 answers 200 at 20/s and 503 at 0.1/s (success rate 20/20.1 = 0.995); v3 has a series that
/// never grows (its rate is 0, so a ratio is NaN).
fn openmetrics(now: u64) -> String {
    let mut out = String::from("# TYPE istio_requests_total counter\n");
    let series = [("v2", "200", 20.0), ("v2", "503", 0.1), ("v3", "200", 0.0)];
    for (version, code, per_second) in series {
        for i in 0..=80u64 {
            let t = now - 1200 + i * 15;
            let value = 1000.0 + per_second * (i * 15) as f64;
            out.push_str(&format!(
                "istio_requests_total{{destination_service_name=\"my-service-web\",destination_version=\"{version}\",response_code=\"{code}\"}} {value} {t}\n"
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

fn start() -> Option<Prometheus> {
    let (prometheus, promtool) = (tool("prometheus"), tool("promtool"));
    if !available(
        "the prometheus server (and promtool)",
        prometheus.is_some() && promtool.is_some(),
        "install Debian's package: `apt-get install prometheus` (.ci/run does)",
    ) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let input = dir.path().join("series.om");
    std::fs::write(&input, openmetrics(now)).unwrap();
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
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(prometheus.unwrap())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=1d")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    // Ready, and the blocks loaded: the series answer.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http_get(port, "/api/v1/query?query=count(istio_requests_total)").contains("\"3\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not come up with the series"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    Some(server)
}

/// A GET on loopback with nothing but the standard library; the body, or "" when the server
/// does not answer yet.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

/// The runbook at shift 5, with an analysis of the given metrics against `url`.
fn plan_with(url: &str, metrics: &str) -> Scratch {
    let s = Scratch::fixture("runbook");
    s.edit_plan(|p| {
        p.replacen(
            "  environments:\n",
            &format!("  analysis:\n    prometheus: {url}\n    interval: 5m\n    metrics:\n{metrics}  environments:\n"),
            1,
        )
    });
    s.run(&["render", "--from-scratch"]).ok();
    s
}

const SUCCESS_RATE: &str = "    - name: success-rate\n      query: |\n        sum(rate(istio_requests_total{destination_service_name=\"{{ service }}\",destination_version=\"{{ canary.version }}\",response_code!~\"5..\"}[{{ interval }}]))\n        / sum(rate(istio_requests_total{destination_service_name=\"{{ service }}\",destination_version=\"{{ canary.version }}\"}[{{ interval }}]))\n";

#[test]
fn the_gate_measures_on_a_real_prometheus() {
    let Some(p) = start() else { return };
    // 0.995 >= 0.99: pass, exit 0, the table says so.
    let s = plan_with(&p.url, &format!("{SUCCESS_RATE}      min: 0.99\n"));
    // The runbook's production is at shift 5: promote has a next step.
    let env = "production";
    let r = s.run(&["gate", "--env", env]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("success-rate")
            && r.stdout.contains("0.9950")
            && r.stdout.contains(">= 0.99")
            && r.stdout.contains("pass"),
        "{}",
        r.stdout
    );
    // The query went out with the plan's values.
    let json: serde_json::Value =
        serde_json::from_str(&s.run(&["gate", "--env", env, "--format", "json"]).stdout).unwrap();
    assert_eq!(json["passed"], true);
    assert!(
        json["metrics"][0]["query"]
            .as_str()
            .unwrap()
            .contains("destination_service_name=\"my-service-web\",destination_version=\"v2\"")
    );
    // 20 answers of 20.1 per second succeed.
    assert!((json["metrics"][0]["value"].as_f64().unwrap() - 20.0 / 20.1).abs() < 1e-9);

    // 0.995 < 0.999: fail, exit 1.
    let s = plan_with(&p.url, &format!("{SUCCESS_RATE}      min: 0.999\n"));
    let r = s.run(&["gate", "--env", env]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("FAIL"), "{}", r.stdout);

    // No series at all, and a ratio of nothing (NaN): both fail, never pass.
    let s = plan_with(
        &p.url,
        "    - name: absent\n      query: sum(rate(istio_requests_total{destination_version=\"v9\"}[5m]))\n      max: 1\n    - name: nan\n      query: sum(rate(istio_requests_total{destination_version=\"v3\",response_code=\"200\"}[5m])) / sum(rate(istio_requests_total{destination_version=\"v3\"}[5m]))\n      min: 0\n",
    );
    let r = s.run(&["gate", "--env", env]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("no data: the query returned no series"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("no data: the value is NaN"),
        "{}",
        r.stdout
    );

    // A query Prometheus refuses: exit 2 with its message, located at the query.
    let s = plan_with(
        &p.url,
        "    - name: broken\n      query: sum(rate(istio_requests_total[5m]\n      min: 0\n",
    );
    let r = s.run(&["gate", "--env", env]);
    r.fails();
    assert!(
        r.stderr.contains("canaryplan.yaml:")
            && r.stderr
                .contains("answered the query of metric `broken` with an error"),
        "{}",
        r.stderr
    );

    // Several series where one number is expected: exit 2, with how to fix it.
    let s = plan_with(
        &p.url,
        "    - name: many\n      query: rate(istio_requests_total[5m])\n      min: 0\n",
    );
    let r = s.run(&["gate", "--env", env]);
    r.fails();
    assert!(
        r.stderr.contains("3 series, where one number was expected"),
        "{}",
        r.stderr
    );
}

#[test]
fn promote_moves_the_weight_only_when_the_gate_holds() {
    let Some(p) = start() else { return };
    let env_name = "production";
    // Passing: the same edit as a plain promote.
    let gated = plan_with(&p.url, &format!("{SUCCESS_RATE}      min: 0.99\n"));
    let plain = plan_with(&p.url, &format!("{SUCCESS_RATE}      min: 0.99\n"));
    gated.run(&["promote", "--env", env_name, "--gate"]).ok();
    plain.run(&["promote", "--env", env_name]).ok();
    assert_eq!(gated.read("canaryplan.yaml"), plain.read("canaryplan.yaml"));
    assert_ne!(
        gated.read("canaryplan.yaml"),
        plan_with(&p.url, &format!("{SUCCESS_RATE}      min: 0.99\n")).read("canaryplan.yaml")
    );

    // Failing: nothing changes (exit 1), or with --on-fail abort the weight goes to 0.
    let s = plan_with(&p.url, &format!("{SUCCESS_RATE}      min: 0.999\n"));
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["promote", "--env", env_name, "--gate"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("the gate failed: nothing changed"),
        "{}",
        r.stderr
    );
    assert_eq!(s.read("canaryplan.yaml"), before, "byte-identical");
    let r = s.run(&["promote", "--env", env_name, "--gate", "--on-fail", "abort"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let after = s.read("canaryplan.yaml");
    let abort = plan_with(&p.url, &format!("{SUCCESS_RATE}      min: 0.999\n"));
    abort.run(&["abort", "--env", env_name]).ok();
    assert_eq!(
        after,
        abort.read("canaryplan.yaml"),
        "the same edit as abort"
    );

    // Unreachable: exit 2, nothing edited.
    let s = plan_with(
        "http://127.0.0.1:9",
        &format!("{SUCCESS_RATE}      min: 0.99\n"),
    );
    let before = s.read("canaryplan.yaml");
    let r = s.run(&["promote", "--env", env_name, "--gate", "--on-fail", "abort"]);
    r.fails();
    assert!(r.stderr.contains("did not answer"), "{}", r.stderr);
    assert_eq!(s.read("canaryplan.yaml"), before);
}

#[test]
fn the_readme_analysis_is_a_valid_plan_section() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## Metric gates").unwrap()..];
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
    // A query using a value the plan does not have is refused where it is written.
    s.edit_plan(|p| {
        p.replace(
            "{{ canary.version }}\",response_code",
            "{{ canary.tag }}\",response_code",
        )
    });
    let r = s.run(&["validate"]);
    r.fails();
    assert!(
        r.stderr
            .contains("error: the query of metric `success-rate` does not render"),
        "{}",
        r.stderr
    );
    // The example workflow promotes behind the gate and rolls back as a commit.
    let workflow =
        std::fs::read_to_string(root().join("examples/progressive-delivery.yaml")).unwrap();
    let parsed = parse_stream(&workflow);
    assert_eq!(parsed[0]["on"]["schedule"][0]["cron"], "*/15 * * * *");
    assert!(workflow.contains("canaryplan promote \"$plan\" --env \"${{ vars.CANARYPLAN_ENV }}\" --gate --on-fail abort --render"));
}
