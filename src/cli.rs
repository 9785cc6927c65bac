//! The command line: parses arguments, calls the library, prints, and maps errors to exit
//! codes. Nothing else in canaryplan prints or exits.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use canaryplan::output::overlay::Written;
use canaryplan::{Error, Mode, Templates};

#[derive(Parser)]
#[command(
    name = "canaryplan",
    version,
    about = "Render canary-release manifests for GitOps from a reviewed canary plan"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the overlays, or print the final manifests with --stdout.
    Render(RenderArgs),
    /// Run every check and write nothing.
    Validate(PlansArgs),
    /// Print the JSON Schema of the plan file, for editors.
    Schema,
}

#[derive(Args)]
struct PlansArgs {
    /// Plan files [default: ./canaryplan.yaml].
    #[arg(value_name = "PLAN")]
    plans: Vec<PathBuf>,
    /// Only these environments (repeatable).
    #[arg(long = "env", value_name = "E")]
    envs: Vec<String>,
    /// A directory with your own copies of canaryplan's templates.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
}

impl PlansArgs {
    fn plans(&self) -> Vec<PathBuf> {
        if self.plans.is_empty() {
            vec![PathBuf::from(canaryplan::plan::DEFAULT_PLAN)]
        } else {
            self.plans.clone()
        }
    }

    fn templates(&self) -> Result<Templates, Error> {
        match &self.templates {
            Some(dir) => Templates::from_dir(dir),
            None => Ok(Templates::builtin()),
        }
    }
}

#[derive(Args)]
struct RenderArgs {
    #[command(flatten)]
    plans: PlansArgs,
    /// Print the final manifests of one environment instead of writing overlays.
    #[arg(long)]
    stdout: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(a) => render(&a),
        Command::Validate(a) => validate(&a),
        Command::Schema => schema(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn render(a: &RenderArgs) -> Result<ExitCode, Error> {
    let templates = a.plans.templates()?;
    if a.stdout {
        let envs = stream_environments(&a.plans)?;
        let renders = canaryplan::render_plans(&a.plans.plans(), &envs, &templates, Mode::Stream)?;
        let mut by_plan: Vec<&PathBuf> = renders.iter().map(|r| &r.plan).collect();
        by_plan.dedup();
        if by_plan.len() != renders.len() {
            return Err(canaryplan::Diagnostic::new(
                "--stdout prints one environment, and the plan has several",
            )
            .hint("choose one with --env E")
            .into());
        }
        let objects: Vec<_> = renders.iter().flat_map(|r| r.objects.iter()).collect();
        let text = canaryplan::yaml::to_stream(objects);
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| {
                canaryplan::Diagnostic::new(format!("cannot write to standard output: {e}"))
            })?;
        return Ok(ExitCode::SUCCESS);
    }
    let renders =
        canaryplan::render_plans(&a.plans.plans(), &a.plans.envs, &templates, Mode::Overlay)?;
    for (dir, written) in canaryplan::write_overlays(&renders)? {
        let what = match written {
            Written::Unchanged => "unchanged",
            Written::Created => "created",
            Written::Updated => "updated",
        };
        eprintln!("{}: {what}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The environment `--stdout` prints: `--env`, else the Argo CD plugin's parameter or
/// environment variable; else the plan's only environment (resolved by the library).
fn stream_environments(a: &PlansArgs) -> Result<Vec<String>, Error> {
    if !a.envs.is_empty() {
        return Ok(a.envs.clone());
    }
    Ok(
        canaryplan::argocd::environment_from_env(|k| std::env::var(k).ok())?
            .into_iter()
            .collect(),
    )
}

fn validate(a: &PlansArgs) -> Result<ExitCode, Error> {
    let templates = a.templates()?;
    let renders = canaryplan::render_plans(&a.plans(), &a.envs, &templates, Mode::Overlay)?;
    for r in &renders {
        eprintln!(
            "{}: {} ok (stage {})",
            r.plan.display(),
            r.environment,
            r.model.stage
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn schema() -> Result<ExitCode, Error> {
    let text = serde_json::to_string_pretty(&canaryplan::plan::json_schema()).unwrap_or_default();
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}
