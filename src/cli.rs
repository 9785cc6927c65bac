//! The command line: parses arguments (`cli/args.rs`), calls the library, prints what it
//! returns, and maps errors to exit codes. Nothing else in canaryplan prints or exits.

mod args;
mod edit;
mod finish;
mod gate;
mod init;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use args::{
    Cli, Color, Command, DiffArgs, ExplainArgs, ExportArgs, ExportRouting, ExportTarget, Format,
    PlansArgs, RenderArgs, StatusArgs, StatusFormat, plan_path, templates,
};
use canaryplan::edit::Action;
use canaryplan::output::diff;
use canaryplan::output::overlay::Written;
use canaryplan::{Diagnostic, Error, Keep, Mode};

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
        Command::Gate(a) => gate::gate(&a).map_err(anyhow::Error::from),
        Command::Promote(a) => edit::promote(&a).map_err(anyhow::Error::from),
        Command::Abort(a) => edit::edit(&a, Action::Abort).map_err(anyhow::Error::from),
        Command::Advance(a) => edit::edit(&a, Action::Advance).map_err(anyhow::Error::from),
        Command::Finish(a) => finish::finish(&a).map_err(anyhow::Error::from),
        Command::Init(a) => init::init(&a).map_err(anyhow::Error::from),
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
    // A closed stderr (`2>&1 | head`) must not turn an error into a panic.
    let mut stderr = std::io::stderr().lock();
    let Some(err) = e.downcast_ref::<Error>() else {
        let _ = writeln!(stderr, "error: {e:#}");
        return;
    };
    if github {
        for d in &err.diagnostics {
            let at = d
                .location
                .as_ref()
                .map(|l| (l.file.display().to_string(), l.line, l.column))
                .or_else(|| d.file.as_ref().map(|f| (f.display().to_string(), 0, 0)));
            let annotation = canaryplan::output::review::annotation(at, &d.message);
            let _ = writeln!(std::io::stdout().lock(), "{annotation}");
        }
    }
    let _ = writeln!(stderr, "{err}");
}

/// Writes `text` to standard output; a closed pipe is not an error worth a panic.
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn render(a: &RenderArgs) -> Result<ExitCode, Error> {
    if a.stdout {
        let plans = a.plans.clone_for_stream()?;
        let renders = plans.render(Mode::Stream, Keep::All)?;
        let mut by_plan: Vec<&std::path::PathBuf> = renders.iter().map(|r| &r.plan).collect();
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
    if a.from_scratch {
        // Written from scratch, an overlay has no record to hold it to: invariant 2 is skipped.
        canaryplan::kinds::promise::accept(&["*".to_string()]);
    }
    let renders = a.plans.render(Mode::Overlay, Keep::Writes)?;
    for r in &renders {
        for m in &r.accepted {
            eprintln!("accepted (invariant 2 skipped for {}): {m}", r.environment);
        }
    }
    canaryplan::refuse_jumps_from_nothing(&renders, a.from_scratch)?;
    let mut changed = false;
    let report = canaryplan::write_overlays(&renders)?;
    let mut lines = String::new();
    for (dir, written) in &report.written {
        let what = match written {
            Written::Unchanged => "unchanged",
            Written::Created => "created",
            Written::Updated => "updated",
        };
        changed |= *written != Written::Unchanged;
        lines.push_str(&format!("{}: {what}\n", diff::shown(dir)));
    }
    to_stderr(&lines);
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
            accept_change: self.accept_change.clone(),
        })
    }
}

fn diff(a: &DiffArgs) -> Result<ExitCode, Error> {
    let renders = a.plans.render(Mode::Overlay, Keep::Review)?;
    let color = match a.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let github = a.format == Format::Github;
    let review = canaryplan::output::review::Review::of(&renders)?;
    if a.format == Format::Markdown {
        print(&review.markdown());
    } else {
        // Above the YAML, what the change moves; nothing at all when every overlay is current.
        if review.stale() > 0 {
            print(&format!("{}\n", review.traffic_text()));
        }
        print(&review.diffs(color, github));
    }
    for (r, changes) in &review.environments {
        if !changes.is_empty() {
            eprintln!("{}: {} file(s) differ", diff::shown(&r.dir), changes.len());
        }
    }
    if github && let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        let summary = review.step_summary();
        if let Err(e) =
            canaryplan::fsio::append_to_runner_file(std::path::Path::new(&path), &summary)
        {
            eprintln!("warning: cannot append to GITHUB_STEP_SUMMARY: {e}");
        }
    }
    match review.stale() {
        0 => {
            eprintln!("all {} overlay(s) are up to date", renders.len());
            Ok(ExitCode::SUCCESS)
        }
        stale => {
            eprintln!(
                "{stale} overlay(s) differ from the plan: run `canaryplan render` and commit the result"
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn validate(a: &PlansArgs) -> Result<ExitCode, Error> {
    let mut lines = String::new();
    for r in &a.render(Mode::Overlay, Keep::Writes)? {
        lines.push_str(&format!(
            "{}: {} ok (stage {})\n",
            diff::shown(&r.plan),
            r.environment,
            r.stage
        ));
    }
    to_stderr(&lines);
    Ok(ExitCode::SUCCESS)
}

/// Prints a report of one line per environment at once: standard error is unbuffered, and
/// thousands of plans would otherwise cost several writes per line.
fn to_stderr(lines: &str) {
    let _ = std::io::stderr().lock().write_all(lines.as_bytes());
}

fn schema() -> anyhow::Result<ExitCode> {
    let text = serde_json::to_string_pretty(&canaryplan::kinds::registry::json_schema())
        .context("cannot write the schema")?;
    writeln!(std::io::stdout().lock(), "{text}").context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

fn json(v: &serde_json::Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default())
}

fn explain(a: &ExplainArgs) -> Result<ExitCode, Error> {
    let templates = templates(a.templates.as_deref())?;
    let wanted = match &a.env {
        Some(e) => Some(e.clone()),
        None => canaryplan::argocd::environment_from_env(|k| std::env::var(k).ok())?,
    };
    let plan = canaryplan::load_any(&plan_path(a.plan.as_ref()))?;
    let env = canaryplan::kinds::one_environment(plan.as_ref(), wanted.as_deref())?;
    let mut e = plan.explain(&env, &templates)?;
    if let Some(against) = a.against {
        let disk = against == args::Against::Disk;
        let c = canaryplan::plans::traffic_change(plan.as_ref(), &env, &templates, disk)?;
        e.text.push_str(&c.text);
        if let Some(m) = e.json.as_object_mut() {
            m.insert("change".into(), c.json);
        }
    }
    print(&match a.format {
        StatusFormat::Json => json(&e.json),
        StatusFormat::Text => e.text,
    });
    Ok(if e.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn export(a: &ExportArgs) -> Result<ExitCode, Error> {
    use canaryplan::export::{Routing, Target};
    let target = match a.target {
        ExportTarget::ArgoRollouts => Target::ArgoRollouts(match a.routing {
            ExportRouting::Subset => Routing::Subset,
            ExportRouting::Host => Routing::Host,
        }),
        ExportTarget::Asm => Target::Asm,
        ExportTarget::Kruise => Target::Kruise,
    };
    let path = plan_path(a.plan.as_ref());
    let e =
        canaryplan::load_any(&path)?.export(a.env.as_deref(), target, a.namespace.as_deref())?;
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
            for p in canaryplan::export::write(&path, dir, &e, target, a.force)? {
                println!("{}: written", diff::shown(&p));
            }
        }
        None => print(&canaryplan::export::to_stream(&e, &plan_file, target)),
    }
    Ok(ExitCode::SUCCESS)
}

fn status(a: &StatusArgs) -> Result<ExitCode, Error> {
    let templates = a.plans.templates()?;
    let mut all = Vec::new();
    for path in a.plans.plans()? {
        let mut envs = canaryplan::plans::status(canaryplan::load_any(&path)?.as_ref(), &templates);
        if !a.plans.envs.is_empty() {
            envs.retain(|e| a.plans.envs.contains(&e.environment));
        }
        all.push((diff::shown(&path), envs));
    }
    print(&match a.format {
        StatusFormat::Json => json(&canaryplan::status::to_json(&all)),
        StatusFormat::Text => canaryplan::status::to_text(&all),
    });
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
