//! The command line's arguments (clap). What each command does is in `cli.rs` and the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use canaryplan::{EnvironmentRender, Error, Keep, Mode, Templates};

#[derive(Parser)]
#[command(
    name = "canaryplan",
    version,
    about = "Render canary-release manifests for GitOps from a reviewed canary plan"
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Print the base edit that finishes a release at cleanup-3 as a patch to review
    /// (--write applies it): the end state moves from the overlay into the base.
    Finish(FinishArgs),
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
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) plans: PlansArgs,
    /// `json` for scripts.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub(crate) format: StatusFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFormat {
    Text,
    Json,
}

#[derive(Args)]
pub(crate) struct ExplainArgs {
    /// The plan file [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    pub(crate) plan: Option<PathBuf>,
    /// The environment (default: the plan's only one, or the Argo CD plugin's).
    #[arg(long = "env", value_name = "E")]
    pub(crate) env: Option<String>,
    /// `json` for scripts.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub(crate) format: StatusFormat,
    /// A directory with your own copies of canaryplan's templates.
    #[arg(long, value_name = "DIR")]
    pub(crate) templates: Option<PathBuf>,
    /// Also show what this render moves against the overlay on disk (its record) or the base
    /// alone.
    #[arg(long, value_enum, value_name = "WHAT")]
    pub(crate) against: Option<Against>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Against {
    Disk,
    Base,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnFail {
    Abort,
}

#[derive(Args)]
pub(crate) struct GateArgs {
    /// The plan file [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    pub(crate) plan: Option<PathBuf>,
    /// The environment whose canary is measured.
    #[arg(long = "env", value_name = "E")]
    pub(crate) env: String,
    /// `json` for scripts.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub(crate) format: StatusFormat,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

/// How the gate reaches Prometheus.
#[derive(Args, Clone, Default)]
pub(crate) struct ServerArgs {
    /// The Prometheus (or Thanos, Mimir) base URL, over the plan's; `user:password@` is sent as
    /// Basic auth and never printed.
    #[arg(long, value_name = "URL", env = "CANARYPLAN_PROMETHEUS_URL")]
    pub(crate) prometheus: Option<String>,
    /// A file holding a bearer token (a mounted service-account token, say).
    #[arg(long, value_name = "FILE", env = "CANARYPLAN_PROMETHEUS_TOKEN_FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// An extra request header, `Name: value` (e.g. `X-Scope-OrgID: team-a` for Mimir or
    /// Cortex); repeat for several.
    #[arg(
        long = "header",
        value_name = "HEADER",
        env = "CANARYPLAN_PROMETHEUS_HEADERS",
        value_delimiter = '\n'
    )]
    pub(crate) headers: Vec<String>,
    /// A PEM file of CAs to trust besides the system's (a private CA in front of Prometheus).
    #[arg(long, value_name = "FILE", env = "CANARYPLAN_PROMETHEUS_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// One sample now instead of `analysis.count` (for a scheduler that runs the gate again).
    #[arg(long)]
    pub(crate) once: bool,
    /// How long the whole run may wait for Prometheus, beyond the time its samples are spaced
    /// over (e.g. `90s`, `2m`) [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub(crate) timeout: Option<String>,
    /// Show each metric's query and every sample.
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The controller: `argo-rollouts` (a CanaryPlan), `asm` (Alibaba Service Mesh lanes, a
    /// LanePlan) or `kruise` (either).
    #[arg(value_enum)]
    pub(crate) target: ExportTarget,
    /// The plan file [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    pub(crate) plan: Option<PathBuf>,
    /// The environment whose weights the objects carry.
    #[arg(long = "env", value_name = "E")]
    pub(crate) env: Option<String>,
    /// Write one file per object into DIR (inside the repository) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub(crate) output: Option<PathBuf>,
    /// With --output: replace files there that canaryplan did not export, or that were edited
    /// since.
    #[arg(long, requires = "output")]
    pub(crate) force: bool,
    /// Refuse (exit 2) when the target cannot express part of the plan.
    #[arg(long)]
    pub(crate) strict: bool,
    /// asm, kruise of a LanePlan: the namespace of services whose base names none
    /// [default: default].
    #[arg(long, value_name = "NS")]
    pub(crate) namespace: Option<String>,
    /// argo-rollouts with Istio: weight DestinationRule subsets (default) or two Services.
    #[arg(long, value_enum, default_value_t = ExportRouting::Subset)]
    pub(crate) routing: ExportRouting,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportTarget {
    ArgoRollouts,
    Asm,
    Kruise,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportRouting {
    Subset,
    Host,
}

#[derive(Args)]
pub(crate) struct EditArgs {
    /// The plan file [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    pub(crate) plan: Option<PathBuf>,
    /// The environment to change.
    #[arg(long = "env", value_name = "E")]
    pub(crate) env: String,
    /// promote: this weight instead of the next step.
    #[arg(long, value_name = "N")]
    pub(crate) to: Option<u8>,
    /// promote, a LanePlan: this lane's ingress weight (or, with --service, one service of it).
    #[arg(long, value_name = "LANE")]
    pub(crate) lane: Option<String>,
    /// promote --lane: this service of the lane (its lane requests go to the baseline, which
    /// runs the lane's image in base).
    #[arg(long, value_name = "SERVICE", requires = "lane")]
    pub(crate) service: Option<String>,
    /// Also re-render the environment's overlay.
    #[arg(long)]
    pub(crate) render: bool,
    /// With --render: write an overlay where none is on disk yet, past `prepare`.
    #[arg(long, requires = "render")]
    pub(crate) from_scratch: bool,
    /// A directory with your own copies of canaryplan's templates.
    #[arg(long, value_name = "DIR")]
    pub(crate) templates: Option<PathBuf>,
    /// promote: only when every `analysis` metric holds (`canaryplan gate`).
    #[arg(long)]
    pub(crate) gate: bool,
    /// promote --gate: what to do when a metric fails: `abort` sets weight 0 (the rollback
    /// as a commit). Without it a failing gate changes nothing.
    #[arg(long, value_enum, value_name = "ACTION", requires = "gate")]
    pub(crate) on_fail: Option<OnFail>,
    /// promote: move on from a step with `pause: manual`.
    #[arg(long)]
    pub(crate) approve: bool,
    /// promote: move on although no git history tells when the current weight was set (its
    /// pause cannot be checked).
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
}

#[derive(Args)]
pub(crate) struct FinishArgs {
    /// The plan file [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    pub(crate) plan: Option<PathBuf>,
    /// The environment at cleanup-3 whose base receives the end state.
    #[arg(long = "env", value_name = "E")]
    pub(crate) env: String,
    /// Apply the edit to the base files (and the plan), then check that `done` equals
    /// cleanup-3; nothing stays changed when it does not.
    #[arg(long)]
    pub(crate) write: bool,
    /// A directory with your own copies of canaryplan's templates.
    #[arg(long, value_name = "DIR")]
    pub(crate) templates: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    /// The directory with the app's manifests.
    #[arg(long, value_name = "DIR", default_value = "base")]
    pub(crate) base: PathBuf,
    /// Where to write the plan.
    #[arg(long, value_name = "PATH", default_value = canaryplan::plan_file::DEFAULT_PLAN)]
    pub(crate) output: PathBuf,
    /// The Service to plan for, in a base with several apps.
    #[arg(long, value_name = "NAME")]
    pub(crate) service: Option<String>,
    /// The Deployment to plan for (the stable one, where each version has its own).
    #[arg(long, value_name = "NAME")]
    pub(crate) workload: Option<String>,
    /// Start from an Argo Rollouts Rollout (and the VirtualService, DestinationRule and
    /// AnalysisTemplates in its folder); prints the Deployment that replaces it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["service", "workload"])]
    pub(crate) from_rollout: Option<PathBuf>,
    /// With --from-rollout: refuse (exit 2, nothing written) when a setting of the Rollout
    /// does not carry over.
    #[arg(long, requires = "from_rollout")]
    pub(crate) strict: bool,
}

#[derive(Args)]
pub(crate) struct PlansArgs {
    /// Plan files [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    pub(crate) plans: Vec<PathBuf>,
    /// Every canaryplan.yaml below the current directory.
    #[arg(long, conflicts_with = "plans")]
    pub(crate) all: bool,
    /// Only these environments (repeatable).
    #[arg(long = "env", value_name = "E")]
    pub(crate) envs: Vec<String>,
    /// A directory with your own copies of canaryplan's templates.
    #[arg(long, value_name = "DIR")]
    pub(crate) templates: Option<PathBuf>,
    /// Accept that environment E changes although its plan entry did not (a reviewed base
    /// edit that moves it): its render is checked against its stage, not its record on disk
    /// (repeatable).
    #[arg(long = "accept-change", value_name = "E")]
    pub(crate) accept_change: Vec<String>,
}

impl PlansArgs {
    pub(crate) fn plans(&self) -> Result<Vec<PathBuf>, Error> {
        if self.all {
            return canaryplan::find_plans(std::path::Path::new("."));
        }
        Ok(if self.plans.is_empty() {
            vec![PathBuf::from(canaryplan::plan_file::DEFAULT_PLAN)]
        } else {
            self.plans.clone()
        })
    }

    pub(crate) fn templates(&self) -> Result<Templates, Error> {
        templates(self.templates.as_deref())
    }

    pub(crate) fn render(&self, mode: Mode, keep: Keep) -> Result<Vec<EnvironmentRender>, Error> {
        canaryplan::kinds::promise::accept(&self.accept_change);
        if self.all {
            // The plans found first render while the rest of the tree is walked.
            let root = std::path::Path::new(".");
            return canaryplan::render_found(root, &self.envs, &self.templates()?, mode, keep);
        }
        canaryplan::render_plans(&self.plans()?, &self.envs, &self.templates()?, mode, keep)
    }
}

#[derive(Args)]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    pub(crate) plans: PlansArgs,
    /// Print the final manifests of one environment instead of writing overlays.
    #[arg(long)]
    pub(crate) stdout: bool,
    /// Exit 1 when an overlay was created or changed (for hooks: the commit must include it).
    #[arg(long, conflicts_with = "stdout")]
    pub(crate) exit_code: bool,
    /// Write an overlay past `prepare` where none is on disk yet (normally a release starts at
    /// prepare, one stage per commit).
    #[arg(long, conflicts_with = "stdout")]
    pub(crate) from_scratch: bool,
}

#[derive(Args)]
pub(crate) struct DiffArgs {
    #[command(flatten)]
    pub(crate) plans: PlansArgs,
    /// `github`: also workflow annotations, and a summary in $GITHUB_STEP_SUMMARY.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Colour the diff.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Github,
    /// The traffic change as a table and the diffs in fenced blocks, for a pull-request
    /// comment.
    Markdown,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

/// The templates of `--templates DIR`, or the built-in ones.
pub(crate) fn templates(dir: Option<&std::path::Path>) -> Result<Templates, Error> {
    match dir {
        Some(dir) => Templates::from_dir(dir),
        None => Ok(Templates::builtin()),
    }
}

/// The plan named on the command line, or `./canaryplan.yaml`.
pub(crate) fn plan_path(plan: Option<&PathBuf>) -> PathBuf {
    plan.cloned()
        .unwrap_or_else(|| PathBuf::from(canaryplan::plan_file::DEFAULT_PLAN))
}
