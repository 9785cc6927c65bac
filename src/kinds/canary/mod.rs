//! The CanaryPlan: one Service's release from a stable to a canary version, on Istio subsets or
//! Gateway API version Services. Its plan file (`plan`), checks (`check`), stage model
//! (`stage`), what each stage renders (`objects`, one folder per traffic backend), the checks
//! on the final stream (`safety`), what finishing a release changes in base (`remaining`),
//! `status`, and the edits of `advance`/`promote`/`abort`.

pub mod analysis;
pub mod check;
pub mod edit;
pub mod export;
pub mod objects;
pub mod plan;
pub mod promise;
pub mod remaining;
pub mod render;
pub mod safety;
pub mod soak;
pub mod stage;
pub mod status;
pub mod transition;

use std::path::Path;
use std::sync::Arc;

use crate::base::Base;
use crate::edit::{Action, Edit};
use crate::error::{Diagnostic, Result};
use crate::export::{Exported, Target};
use crate::fsio::Root;
use crate::kinds::{AnyPlan, Explained, Plan, Registration};
use crate::render::{EnvironmentRender, Mode};
use crate::status::EnvironmentStatus;
use crate::templates::Templates;
use crate::yaml::Source;

pub use check::CheckedPlan;

/// `kind: CanaryPlan`, also what a plan file without `kind:` is read as.
pub const REGISTRATION: Registration = Registration {
    kind: plan::KIND,
    load: load_in,
    schema: || schemars::schema_for!(plan::PlanFile),
};

fn load_in(source: Arc<Source>, root: Root) -> Result<AnyPlan> {
    Ok(Box::new(check::check(plan::Plan::parse_in(source, root)?)?))
}

impl Plan for CheckedPlan {
    fn path(&self) -> &Path {
        &self.path
    }

    fn environments(&self) -> Vec<String> {
        self.environments
            .iter()
            .map(|e| e.name.value.clone())
            .collect()
    }

    fn render(
        &self,
        only: &[String],
        templates: &Templates,
        mode: Mode,
    ) -> Result<Vec<EnvironmentRender>> {
        render::render_plan(self, only, templates, mode)
    }

    fn render_with(&self, base: &Base, templates: &Templates) -> Result<Vec<String>> {
        render::render_text(self, base, templates)
    }

    fn status(&self, templates: &Templates) -> Vec<EnvironmentStatus> {
        let mut envs = status::of(self, templates);
        let now = soak::now();
        for e in &mut envs {
            e.notes.extend(soak::status_note(self, &e.environment, now));
        }
        envs
    }

    fn edit(&self, env: &str, action: Action, templates: &Templates) -> Result<Edit> {
        edit::edit(self, env, action, templates)
    }

    fn explain(&self, env: &str, templates: &Templates) -> Result<Explained> {
        let Some(e) = self.environment(env) else {
            // The renderer's message (with a suggestion) for an unknown environment.
            return Err(
                render::render_plan(self, &[env.to_string()], templates, Mode::Stream)
                    .err()
                    .unwrap_or_else(|| Diagnostic::new(format!("no environment `{env}`")).into()),
            );
        };
        let e = render::explain_environment(self, e, templates)?;
        Ok(Explained {
            json: serde_json::to_value(&e).unwrap_or_default(),
            text: crate::explain::to_text(&e),
            ok: e.problems.is_empty(),
        })
    }

    fn export(
        &self,
        env: Option<&str>,
        target: Target,
        namespace: Option<&str>,
    ) -> Result<Exported> {
        if namespace.is_some() {
            return Err(
                Diagnostic::new("--namespace goes with `export asm|kruise` of a LanePlan")
                    .in_file(&self.path)
                    .hint("a CanaryPlan's objects take the namespace of its base")
                    .into(),
            );
        }
        match target {
            Target::ArgoRollouts(routing) => export::argo_rollouts::export(self, env, routing),
            Target::Kruise => export::kruise::export(self, env),
            Target::Asm => Err(Diagnostic::new(format!(
                "`export asm` reads a LanePlan, and {} is a CanaryPlan",
                self.path.display()
            ))
            .in_file(&self.path)
            .hint("ASM lanes span a call chain: write a LanePlan (`kind: LanePlan`), or export this plan for `argo-rollouts` or `kruise`")
            .into()),
        }
    }
}
