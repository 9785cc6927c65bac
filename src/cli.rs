//! The command line: parses arguments, calls the library, prints, and maps errors to exit
//! codes. Nothing else in canaryplan prints or exits.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use canaryplan::output::diff::{self, ChangeKind, FileChange};
use canaryplan::output::overlay::Written;
use canaryplan::{Diagnostic, EnvironmentRender, Error, Mode, Templates};

#[derive(Parser)]
#[command(
    name = "canaryplan",
    version,
    about = "Render canary-release manifests for GitOps from a reviewed canary plan"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the overlays, or print the final manifests of one environment with --stdout.
    Render(RenderArgs),
    /// Render in memory and show how the overlays on disk differ (exit 1 when they do).
    Diff(DiffArgs),
    /// Run every check and write nothing.
    Validate(PlansArgs),
    /// Show each environment's stage, traffic, overlay and next step.
    Status(StatusArgs),
    /// Where every request goes in one environment, read from its final manifests (exit 1 when
    /// a route answers 503, can never match, or lost what the base reached).
    Explain(ExplainArgs),
    /// Print (or write with --output) the objects of an in-cluster controller that does what
    /// the plan does: `asm` (lanes), `kruise`.
    Export(ExportArgs),
    /// Run the plan's `analysis` queries against Prometheus: exit 0 all hold, 1 one fails.
    Gate(GateArgs),
    /// Move an environment to the next weight in `steps` (or --to N); with --gate only when
    /// the analysis holds.
    Promote(EditArgs),
    /// Put all traffic back on the stable copy (weight 0).
    Abort(EditArgs),
    /// Move an environment to the next stage.
    Advance(EditArgs),
    /// Write a starter canaryplan.yaml from a base directory.
    Init(InitArgs),
    /// Print the JSON Schema of the plan file, for editors.
    Schema,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(Args)]
struct StatusArgs {
    #[command(flatten)]
    plans: PlansArgs,
    /// `json` for scripts.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    format: StatusFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StatusFormat {
    Text,
    Json,
}

#[derive(Args)]
struct ExplainArgs {
    /// The plan file [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    plan: Option<PathBuf>,
    /// The environment (default: the plan's only one, or the Argo CD plugin's).
    #[arg(long = "env", value_name = "E")]
    env: Option<String>,
    /// `json` for scripts.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    format: StatusFormat,
    /// A directory with your own copies of canaryplan's templates.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnFail {
    Abort,
}

#[derive(Args)]
struct GateArgs {
    /// The plan file [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    plan: Option<PathBuf>,
    /// The environment whose canary is measured.
    #[arg(long = "env", value_name = "E")]
    env: String,
    /// `json` for scripts.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    format: StatusFormat,
}

#[derive(Args)]
struct ExportArgs {
    /// The controller: `argo-rollouts` (a CanaryPlan), `asm` (Alibaba Service Mesh lanes, a
    /// LanePlan) or `kruise` (either).
    #[arg(value_enum)]
    target: ExportTarget,
    /// The plan file [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    plan: Option<PathBuf>,
    /// The environment whose weights the objects carry.
    #[arg(long = "env", value_name = "E")]
    env: Option<String>,
    /// Write one file per object into DIR instead of printing them.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Refuse (exit 2) when the target cannot express part of the plan.
    #[arg(long)]
    strict: bool,
    /// argo-rollouts with Istio: weight DestinationRule subsets (default) or two Services.
    #[arg(long, value_enum, default_value_t = ExportRouting::Subset)]
    routing: ExportRouting,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportTarget {
    ArgoRollouts,
    Asm,
    Kruise,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportRouting {
    Subset,
    Host,
}

#[derive(Args)]
struct EditArgs {
    /// The plan file [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    plan: Option<PathBuf>,
    /// The environment to change.
    #[arg(long = "env", value_name = "E")]
    env: String,
    /// promote: this weight instead of the next step.
    #[arg(long, value_name = "N")]
    to: Option<u8>,
    /// Also re-render the environment's overlay.
    #[arg(long)]
    render: bool,
    /// With --render: write an overlay where none is on disk yet, past `prepare`.
    #[arg(long, requires = "render")]
    from_scratch: bool,
    /// A directory with your own copies of canaryplan's templates.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
    /// promote: only when every `analysis` metric holds (`canaryplan gate`).
    #[arg(long)]
    gate: bool,
    /// promote --gate: what to do when a metric fails: `abort` sets weight 0 (the rollback
    /// as a commit). Without it a failing gate changes nothing.
    #[arg(long, value_enum, value_name = "ACTION", requires = "gate")]
    on_fail: Option<OnFail>,
}

#[derive(Args)]
struct InitArgs {
    /// The directory with the app's manifests.
    #[arg(long, value_name = "DIR", default_value = "base")]
    base: PathBuf,
    /// Where to write the plan.
    #[arg(long, value_name = "PATH", default_value = canaryplan::plan::DEFAULT_PLAN)]
    output: PathBuf,
    /// The Service to plan for, in a base with several apps.
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// The Deployment to plan for (the stable one, where each version has its own).
    #[arg(long, value_name = "NAME")]
    workload: Option<String>,
    /// Start from an Argo Rollouts Rollout (and the VirtualService, DestinationRule and
    /// AnalysisTemplates in its folder); prints the Deployment that replaces it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["service", "workload"])]
    from_rollout: Option<PathBuf>,
    /// With --from-rollout: refuse (exit 2, nothing written) when a setting of the Rollout
    /// does not carry over.
    #[arg(long, requires = "from_rollout")]
    strict: bool,
}

#[derive(Args)]
struct PlansArgs {
    /// Plan files [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    plans: Vec<PathBuf>,
    /// Every canaryplan.yaml below the current directory.
    #[arg(long, conflicts_with = "plans")]
    all: bool,
    /// Only these environments (repeatable).
    #[arg(long = "env", value_name = "E")]
    envs: Vec<String>,
    /// A directory with your own copies of canaryplan's templates.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
}

impl PlansArgs {
    fn plans(&self) -> Result<Vec<PathBuf>, Error> {
        if self.all {
            return canaryplan::find_plans(std::path::Path::new("."));
        }
        Ok(if self.plans.is_empty() {
            vec![PathBuf::from(canaryplan::plan::DEFAULT_PLAN)]
        } else {
            self.plans.clone()
        })
    }

    fn templates(&self) -> Result<Templates, Error> {
        templates(self.templates.as_deref())
    }

    fn render(&self, mode: Mode) -> Result<Vec<EnvironmentRender>, Error> {
        canaryplan::render_plans(&self.plans()?, &self.envs, &self.templates()?, mode)
    }
}

#[derive(Args)]
struct RenderArgs {
    #[command(flatten)]
    plans: PlansArgs,
    /// Print the final manifests of one environment instead of writing overlays.
    #[arg(long)]
    stdout: bool,
    /// Exit 1 when an overlay was created or changed (for hooks: the commit must include it).
    #[arg(long, conflicts_with = "stdout")]
    exit_code: bool,
    /// Write an overlay past `prepare` where none is on disk yet (normally a release starts at
    /// prepare, one stage per commit).
    #[arg(long, conflicts_with = "stdout")]
    from_scratch: bool,
}

#[derive(Args)]
struct DiffArgs {
    #[command(flatten)]
    plans: PlansArgs,
    /// `github`: also workflow annotations, and a summary in $GITHUB_STEP_SUMMARY.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Colour the diff.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Github,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let github = matches!(&cli.command, Command::Diff(d) if d.format == Format::Github);
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Render(a) => render(&a).map_err(anyhow::Error::from),
        Command::Diff(a) => diff(&a).map_err(anyhow::Error::from),
        Command::Validate(a) => validate(&a).map_err(anyhow::Error::from),
        Command::Status(a) => status(&a).map_err(anyhow::Error::from),
        Command::Explain(a) => explain(&a).map_err(anyhow::Error::from),
        Command::Export(a) => export(&a).map_err(anyhow::Error::from),
        Command::Gate(a) => gate(&a).map_err(anyhow::Error::from),
        Command::Promote(a) => {
            let to = a.to;
            edit(&a, canaryplan::edit::Action::Promote { to }).map_err(anyhow::Error::from)
        }
        Command::Abort(a) => edit(&a, canaryplan::edit::Action::Abort).map_err(anyhow::Error::from),
        Command::Advance(a) => {
            edit(&a, canaryplan::edit::Action::Advance).map_err(anyhow::Error::from)
        }
        Command::Init(a) => init(&a).map_err(anyhow::Error::from),
        Command::Schema => schema(),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "canaryplan",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => man(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&e, github);
            ExitCode::from(2)
        }
    }
}

/// Prints an error at the edge: the library's diagnostics as they are (and as annotations for
/// GitHub), anything else with its chain of causes.
fn report(e: &anyhow::Error, github: bool) {
    let Some(err) = e.downcast_ref::<Error>() else {
        eprintln!("error: {e:#}");
        return;
    };
    if github {
        for d in &err.diagnostics {
            let at = d
                .location
                .as_ref()
                .map(|l| (l.file.display().to_string(), l.line, l.column))
                .or_else(|| d.file.as_ref().map(|f| (f.display().to_string(), 0, 0)));
            println!("{}", annotation(at, &d.message));
        }
    }
    eprintln!("{err}");
}

fn render(a: &RenderArgs) -> Result<ExitCode, Error> {
    if a.stdout {
        let plans = a.plans.clone_for_stream()?;
        let renders = plans.render(Mode::Stream)?;
        let mut by_plan: Vec<&PathBuf> = renders.iter().map(|r| &r.plan).collect();
        by_plan.dedup();
        if by_plan.len() != renders.len() {
            return Err(Diagnostic::new(
                "--stdout prints one environment, and the plan has several",
            )
            .hint("choose one with --env E")
            .into());
        }
        let text = canaryplan::yaml::to_stream(renders.iter().flat_map(|r| r.objects.iter()));
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Diagnostic::new(format!("cannot write to standard output: {e}")))?;
        return Ok(ExitCode::SUCCESS);
    }
    let renders = a.plans.render(Mode::Overlay)?;
    canaryplan::refuse_jumps_from_nothing(&renders, a.from_scratch)?;
    let mut changed = false;
    let report = canaryplan::write_overlays(&renders)?;
    for (dir, written) in &report.written {
        let what = match written {
            Written::Unchanged => "unchanged",
            Written::Created => "created",
            Written::Updated => "updated",
        };
        changed |= *written != Written::Unchanged;
        eprintln!("{}: {what}", diff::shown(dir));
    }
    warn_left_behind(&report);
    if changed && a.exit_code {
        eprintln!("overlays changed: review them, `git add` them and commit again");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

impl PlansArgs {
    /// For `--stdout`: the environment comes from `--env`, else from the Argo CD plugin
    /// parameter or environment; else the plan's only environment.
    fn clone_for_stream(&self) -> Result<PlansArgs, Error> {
        let envs = if self.envs.is_empty() {
            canaryplan::argocd::environment_from_env(|k| std::env::var(k).ok())?
                .into_iter()
                .collect()
        } else {
            self.envs.clone()
        };
        Ok(PlansArgs {
            plans: self.plans.clone(),
            all: self.all,
            envs,
            templates: self.templates.clone(),
        })
    }
}

fn diff(a: &DiffArgs) -> Result<ExitCode, Error> {
    let renders = a.plans.render(Mode::Overlay)?;
    let color = match a.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut out = std::io::stdout().lock();
    let mut stale = 0;
    let mut per_env: Vec<(&EnvironmentRender, Vec<FileChange>)> = Vec::new();
    for r in &renders {
        let changes = diff::changes(r)?;
        for c in &changes {
            let text = c.unified();
            let _ = out.write_all(if color { paint(&text) } else { text }.as_bytes());
            if a.format == Format::Github {
                let kind = match c.kind {
                    ChangeKind::Added => "missing",
                    ChangeKind::Modified => "stale",
                    ChangeKind::Removed => "no longer rendered",
                };
                let line = if c.kind == ChangeKind::Removed {
                    1
                } else {
                    c.first_changed_line()
                };
                let msg = format!(
                    "{} is {kind} for environment {} (stage {}): run `canaryplan render` and commit the result",
                    diff::shown(&c.path),
                    r.environment,
                    r.stage
                );
                let _ = writeln!(
                    out,
                    "{}",
                    annotation(Some((diff::shown(&c.path), line as u64, 0)), &msg)
                );
            }
        }
        if !changes.is_empty() {
            stale += 1;
            eprintln!("{}: {} file(s) differ", diff::shown(&r.dir), changes.len());
        }
        per_env.push((r, changes));
    }
    let _ = out.flush();
    if a.format == Format::Github
        && let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY")
    {
        let summary = step_summary(&per_env);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(summary.as_bytes()));
        if let Err(e) = written {
            eprintln!("warning: cannot append to GITHUB_STEP_SUMMARY: {e}");
        }
    }
    if stale == 0 {
        eprintln!("all {} overlay(s) are up to date", renders.len());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{stale} overlay(s) differ from the plan: run `canaryplan render` and commit the result"
        );
        Ok(ExitCode::from(1))
    }
}

fn paint(diff: &str) -> String {
    let mut out = String::with_capacity(diff.len() + 64);
    for line in diff.split_inclusive('\n') {
        let code = if line.starts_with("+++") || line.starts_with("---") {
            "1"
        } else if line.starts_with('+') {
            "32"
        } else if line.starts_with('-') {
            "31"
        } else if line.starts_with("@@") {
            "36"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            let body = line.trim_end_matches('\n');
            out.push_str(&format!("\x1b[{code}m{body}\x1b[0m"));
            if line.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// A GitHub Actions `::error` workflow command.
fn annotation(at: Option<(String, u64, u64)>, message: &str) -> String {
    let data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let prop = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let mut props = Vec::new();
    if let Some((file, line, col)) = at {
        props.push(format!("file={}", prop(&file)));
        if line > 0 {
            props.push(format!("line={line}"));
        }
        if col > 0 {
            props.push(format!("col={col}"));
        }
    }
    props.push("title=canaryplan".to_string());
    format!("::error {}::{}", props.join(","), data(message))
}

fn step_summary(per_env: &[(&EnvironmentRender, Vec<FileChange>)]) -> String {
    let mut s = String::from("## canaryplan\n");
    let mut last_plan = None;
    for (r, changes) in per_env {
        if last_plan != Some(&r.plan) {
            s.push_str(&format!(
                "\n### {}\n\n| environment | stage | traffic | overlay |\n|---|---|---|---|\n",
                diff::shown(&r.plan)
            ));
            last_plan = Some(&r.plan);
        }
        let files = if changes.is_empty() {
            "up to date".to_string()
        } else {
            let names: Vec<String> = changes
                .iter()
                .map(|c| {
                    format!(
                        "`{}`",
                        c.path
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    )
                })
                .collect();
            format!("{} file(s) changed: {}", changes.len(), names.join(", "))
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.environment, r.stage, r.traffic, files
        ));
    }
    s
}

fn validate(a: &PlansArgs) -> Result<ExitCode, Error> {
    let renders = a.render(Mode::Overlay)?;
    for r in &renders {
        eprintln!(
            "{}: {} ok (stage {})",
            diff::shown(&r.plan),
            r.environment,
            r.stage
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn schema() -> anyhow::Result<ExitCode> {
    let text = serde_json::to_string_pretty(&canaryplan::plan::json_schema())
        .context("cannot write the schema")?;
    writeln!(std::io::stdout().lock(), "{text}").context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// The templates of `--templates DIR`, or the built-in ones.
fn templates(dir: Option<&std::path::Path>) -> Result<Templates, Error> {
    match dir {
        Some(dir) => Templates::from_dir(dir),
        None => Ok(Templates::builtin()),
    }
}

/// The plan named on the command line, or `./canaryplan.yaml`.
fn plan_path(plan: Option<&PathBuf>) -> PathBuf {
    plan.cloned()
        .unwrap_or_else(|| PathBuf::from(canaryplan::plan::DEFAULT_PLAN))
}

fn explain(a: &ExplainArgs) -> Result<ExitCode, Error> {
    let templates = templates(a.templates.as_deref())?;
    let path = plan_path(a.plan.as_ref());
    let wanted = match &a.env {
        Some(e) => Some(e.clone()),
        None => canaryplan::argocd::environment_from_env(|k| std::env::var(k).ok())?,
    };
    let plan = match canaryplan::load_any(&path)? {
        canaryplan::AnyPlan::Canary(p) => p,
        canaryplan::AnyPlan::Lanes(p) => return explain_lanes(a, &p, wanted),
        other => return explain_routes_of(a, &other, wanted),
    };
    let env = match (&wanted, plan.environments.as_slice()) {
        (Some(name), _) => match plan.environment(name) {
            Some(e) => e,
            // The renderer's message (with a suggestion) for an unknown environment.
            None => {
                return Err(canaryplan::render_plan(
                    &plan,
                    std::slice::from_ref(name),
                    &templates,
                    Mode::Stream,
                )
                .err()
                .unwrap_or_else(|| Diagnostic::new(format!("no environment `{name}`")).into()));
            }
        },
        (None, [one]) => one,
        (None, _) => {
            return Err(
                Diagnostic::new("explain shows one environment, and the plan has several")
                    .hint("choose one with --env E")
                    .into(),
            );
        }
    };
    let e = canaryplan::explain_environment(&plan, env, &templates)?;
    let mut out = std::io::stdout().lock();
    if a.format == StatusFormat::Json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&e).unwrap_or_default()
        );
    } else {
        let _ = write!(out, "{}", canaryplan::explain::to_text(&e));
    }
    Ok(if e.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `explain` for a mesh upgrade plan: the routes of its final manifests, as for a CanaryPlan.
fn explain_routes_of(
    a: &ExplainArgs,
    plan: &canaryplan::AnyPlan,
    wanted: Option<String>,
) -> Result<ExitCode, Error> {
    let e = canaryplan::explain_any(plan, wanted.as_deref())?;
    Ok(print_explained(
        a.format,
        &e,
        &canaryplan::explain::to_text(&e),
        e.problems.is_empty(),
    ))
}

/// An explanation as text or JSON; exit 1 when it found a problem.
fn print_explained<T: serde::Serialize>(
    format: StatusFormat,
    value: &T,
    text: &str,
    ok: bool,
) -> ExitCode {
    let mut out = std::io::stdout().lock();
    if format == StatusFormat::Json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        let _ = write!(out, "{text}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `explain` for a LanePlan: each request class's path through the chain.
fn explain_lanes(
    a: &ExplainArgs,
    plan: &canaryplan::kinds::lanes::CheckedLanePlan,
    wanted: Option<String>,
) -> Result<ExitCode, Error> {
    let env = match (wanted, plan.environments.as_slice()) {
        (Some(name), _) => name,
        (None, [one]) => one.name.value.clone(),
        (None, _) => {
            return Err(
                Diagnostic::new("explain shows one environment, and the plan has several")
                    .hint("choose one with --env E")
                    .into(),
            );
        }
    };
    let e = canaryplan::kinds::lanes::explain_environment(plan, &env)?;
    let mut text = String::new();
    for p in &e.paths {
        text.push_str(&format!("{p}\n"));
    }
    for p in &e.problems {
        text.push_str(&format!("problem: {p}\n"));
    }
    Ok(print_explained(a.format, &e, &text, e.problems.is_empty()))
}

fn export(a: &ExportArgs) -> Result<ExitCode, Error> {
    use canaryplan::export::Target;
    let target = match a.target {
        ExportTarget::ArgoRollouts => Target::ArgoRollouts(match a.routing {
            ExportRouting::Subset => canaryplan::export::argo_rollouts::Routing::Subset,
            ExportRouting::Host => canaryplan::export::argo_rollouts::Routing::Host,
        }),
        ExportTarget::Asm => Target::Asm,
        ExportTarget::Kruise => Target::Kruise,
    };
    let path = plan_path(a.plan.as_ref());
    let plan = canaryplan::load_any(&path)?;
    let e = canaryplan::export::export(&plan, a.env.as_deref(), target)?;
    if a.strict && !e.notes.is_empty() {
        let mut err = Error::one(
            Diagnostic::new(format!(
                "{} cannot express all of {}",
                target.name(),
                diff::shown(&path)
            ))
            .hint("remove --strict to export anyway (what is not expressed is said in each file's header)"),
        );
        for n in &e.notes {
            err.diagnostics
                .push(Diagnostic::new(format!("not expressed: {n}")));
        }
        return Err(err);
    }
    for n in &e.notes {
        eprintln!("note: not expressed in {}: {n}", target.name());
    }
    let plan_file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match &a.output {
        Some(dir) => {
            for p in canaryplan::export::write(dir, &e, &plan_file, target)? {
                println!("{}: written", diff::shown(&p));
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            let _ = write!(
                out,
                "{}",
                canaryplan::export::to_stream(&e, &plan_file, target)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(a: &StatusArgs) -> Result<ExitCode, Error> {
    let templates = a.plans.templates()?;
    let mut all = Vec::new();
    for path in a.plans.plans()? {
        let mut envs = match canaryplan::load_any(&path)? {
            canaryplan::AnyPlan::Canary(plan) => canaryplan::status::of(&plan, &templates),
            canaryplan::AnyPlan::Lanes(plan) => canaryplan::kinds::lanes::status(&plan),
            canaryplan::AnyPlan::GatewayUpgrade(plan) => {
                canaryplan::kinds::gateway_upgrade::status(&plan)
            }
            canaryplan::AnyPlan::RevisionUpgrade(plan) => {
                canaryplan::kinds::revision_upgrade::status(&plan)
            }
        };
        if !a.plans.envs.is_empty() {
            envs.retain(|e| a.plans.envs.contains(&e.environment));
        }
        all.push((path, envs));
    }
    let mut out = std::io::stdout().lock();
    if a.format == StatusFormat::Json {
        let json: Vec<_> = all
            .iter()
            .map(|(p, envs)| serde_json::json!({"plan": diff::shown(p), "environments": envs}))
            .collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"plans": json})).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (path, envs) in &all {
        let _ = writeln!(out, "{}", diff::shown(path));
        for e in envs {
            let overlay = match &e.overlay {
                canaryplan::status::Overlay::Current => "up to date".to_string(),
                canaryplan::status::Overlay::Stale { files } => {
                    format!("stale: {files} file(s) differ, run `canaryplan render`")
                }
                canaryplan::status::Overlay::Missing => {
                    "not rendered yet, run `canaryplan render`".to_string()
                }
                canaryplan::status::Overlay::Refused { reason } => {
                    format!("render refuses: {reason}")
                }
            };
            let _ = writeln!(
                out,
                "  {}  stage {}  ({}: {overlay})",
                e.environment, e.stage, e.output
            );
            for t in &e.traffic {
                let _ = writeln!(
                    out,
                    "    {:<6} {:<24} {} {:>3}%  {}",
                    t.version,
                    t.workload,
                    bar(t.percent),
                    t.percent,
                    t.role
                );
            }
            for n in &e.notes {
                let _ = writeln!(out, "    note: {n}");
            }
            let _ = writeln!(out, "    next: {}", e.next);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A 20-cell bar for a percentage.
fn bar(percent: u8) -> String {
    let full = (usize::from(percent) * 20 + 50) / 100;
    format!("{}{}", "█".repeat(full), "░".repeat(20 - full))
}

/// The gate's table, for a terminal.
fn gate_table(r: &canaryplan::gate::Report) -> String {
    let mut t = format!("prometheus: {}\n", r.prometheus);
    let w = r
        .rows
        .iter()
        .map(|x| x.metric.len())
        .max()
        .unwrap_or(6)
        .max(6);
    t.push_str(&format!(
        "  {:<w$}  {:>12}  {:<20}  result\n",
        "metric", "value", "bound"
    ));
    for row in &r.rows {
        let value = row
            .value
            .map(|v| format!("{v:.4}"))
            .unwrap_or_else(|| "no data".into());
        let mut line = format!(
            "  {:<w$}  {:>12}  {:<20}  {}",
            row.metric,
            value,
            row.bound,
            if row.pass { "pass" } else { "FAIL" }
        );
        if let Some(n) = &row.note {
            line.push_str(&format!("  ({n})"));
        }
        t.push_str(&line);
        t.push('\n');
    }
    t
}

/// The plan and environment a gate measures.
fn gate_report(plan_path: &std::path::Path, env: &str) -> Result<canaryplan::gate::Report, Error> {
    let plan = canaryplan::check::load(plan_path)?;
    let Some(e) = plan.environment(env) else {
        let names: Vec<&str> = plan
            .environments
            .iter()
            .map(|e| e.name.value.as_str())
            .collect();
        return Err(
            Diagnostic::new(format!("the plan has no environment `{env}`"))
                .in_file(plan_path)
                .hint(format!("the plan has {}", names.join(", ")))
                .into(),
        );
    };
    canaryplan::gate::run(
        &plan,
        e,
        std::env::var(canaryplan::analysis::PROMETHEUS_ENV).ok(),
    )
}

fn gate(a: &GateArgs) -> Result<ExitCode, Error> {
    let path = plan_path(a.plan.as_ref());
    let r = gate_report(&path, &a.env)?;
    let mut out = std::io::stdout().lock();
    if a.format == StatusFormat::Json {
        let json = serde_json::json!({"passed": r.passed(), "prometheus": r.prometheus, "metrics": r.rows});
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else {
        let _ = write!(out, "{}", gate_table(&r));
    }
    Ok(if r.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn edit(a: &EditArgs, action: canaryplan::edit::Action) -> Result<ExitCode, Error> {
    if a.to.is_some() && !matches!(action, canaryplan::edit::Action::Promote { .. }) {
        return Err(Diagnostic::new("--to goes with promote")
            .hint("abort always sets weight 0; advance moves the stage")
            .into());
    }
    if a.gate && !matches!(action, canaryplan::edit::Action::Promote { .. }) {
        return Err(Diagnostic::new("--gate goes with promote")
            .hint("run `canaryplan gate` to measure without promoting")
            .into());
    }
    // promote --gate: measure first; a failing gate edits nothing, or aborts with --on-fail.
    let (action, failed) = if a.gate {
        let r = gate_report(&plan_path(a.plan.as_ref()), &a.env)?;
        eprint!("{}", gate_table(&r));
        match (r.passed(), a.on_fail) {
            (true, _) => (action, false),
            (false, Some(OnFail::Abort)) => {
                eprintln!("the gate failed: aborting (weight 0)");
                (canaryplan::edit::Action::Abort, true)
            }
            (false, None) => {
                eprintln!(
                    "the gate failed: nothing changed (add --on-fail abort to roll back as a commit)"
                );
                return Ok(ExitCode::from(1));
            }
        }
    } else {
        (action, false)
    };
    let code = edit_plan(a, action)?;
    Ok(if failed { ExitCode::from(1) } else { code })
}

fn edit_plan(a: &EditArgs, action: canaryplan::edit::Action) -> Result<ExitCode, Error> {
    let templates = templates(a.templates.as_deref())?;
    let path = plan_path(a.plan.as_ref());
    // Read, edit and write under one lock: concurrent steps take turns.
    let _lock = canaryplan::edit::lock(&path)?;
    let edit = canaryplan::edit::plan_edit(&path, &a.env, action, &templates)?;
    let renders = if a.render {
        let r = canaryplan::render_any(
            &edit.plan,
            std::slice::from_ref(&a.env),
            &templates,
            Mode::Overlay,
        )?;
        canaryplan::refuse_jumps_from_nothing(&r, a.from_scratch)?;
        r
    } else {
        Vec::new()
    };
    canaryplan::edit::write(&edit)?;
    // The plan and its overlay change together: if the overlay cannot be written, the plan
    // goes back to what it was.
    let report = match canaryplan::write_overlays(&renders) {
        Ok(r) => r,
        Err(mut e) => {
            let restored = canaryplan::edit::restore(&edit);
            e.diagnostics.push(match restored {
                Ok(()) => Diagnostic::new(format!("{} is unchanged", diff::shown(&path)))
                    .hint("fix the problem and run the same command again"),
                Err(r) => Diagnostic::new(format!(
                    "{} was edited but its overlay was not written, and putting the plan back failed too: {r}",
                    diff::shown(&path)
                ))
                .hint("render it, or undo the plan edit with git"),
            });
            return Err(e);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}: {}", diff::shown(&path), edit.change);
    for (dir, written) in &report.written {
        let _ = writeln!(
            out,
            "{}: {}",
            diff::shown(dir),
            if *written == Written::Unchanged {
                "unchanged"
            } else {
                "rendered"
            }
        );
    }
    warn_left_behind(&report);
    for n in &edit.notes {
        eprintln!("{n}");
    }
    let _ = writeln!(out, "suggested commit message:\n  {}", edit.commit_message);
    Ok(ExitCode::SUCCESS)
}

fn warn_left_behind(report: &canaryplan::WriteReport) {
    for p in &report.left_behind {
        eprintln!(
            "warning: canaryplan could not remove {} (the previous overlay, moved aside): remove it",
            diff::shown(p)
        );
    }
}

fn init(a: &InitArgs) -> Result<ExitCode, Error> {
    if a.output.exists() {
        return Err(Diagnostic::new(
            "a plan already exists here; canaryplan init does not overwrite it",
        )
        .in_file(&a.output)
        .hint("remove it first, or choose another path with --output")
        .into());
    }
    if let Some(file) = &a.from_rollout {
        let m = canaryplan::from_rollout::migrate(file, &a.output, a.strict)?;
        std::fs::write(&a.output, &m.plan).map_err(|e| Error::io("write", &a.output, &e))?;
        print!("{}", m.base_changes);
        for n in &m.dropped {
            eprintln!("note: not carried over: {n}");
        }
        for n in &m.notes {
            eprintln!("note: {n}");
        }
        eprintln!(
            "wrote {}: review it, commit the objects above in place of the Rollout (and the routes they replace), then run `canaryplan validate`",
            diff::shown(&a.output)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let pick = canaryplan::init::Pick {
        service: a.service.clone(),
        workload: a.workload.clone(),
    };
    let text = canaryplan::init::starter(&a.base, &a.output, &pick)?;
    std::fs::write(&a.output, &text).map_err(|e| Error::io("write", &a.output, &e))?;
    eprintln!(
        "wrote {}: review it (the image above all), then run `canaryplan validate`",
        diff::shown(&a.output)
    );
    Ok(ExitCode::SUCCESS)
}

fn man() -> anyhow::Result<ExitCode> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
        .render(&mut buf)
        .context("cannot render the man page")?;
    std::io::stdout()
        .lock()
        .write_all(&buf)
        .context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}
