//! The LanePlan as the commands see it (`kinds::Plan`).

use std::path::Path;

use super::plan::{self, CheckedLanePlan};
use crate::base::Base;
use crate::edit::{Action, Edit};
use crate::error::{Diagnostic, Result};
use crate::export::{Exported, Target};
use crate::kinds::{Explained, Plan, Registration};
use crate::render::{EnvironmentRender, Mode};
use crate::status::EnvironmentStatus;
use crate::templates::Templates;

/// `kind: LanePlan`.
pub const REGISTRATION: Registration = Registration {
    kind: plan::KIND,
    load: |source, root| Ok(Box::new(plan::load_in(source, root)?)),
    schema: || schemars::schema_for!(plan::LanePlanFile),
};

impl Plan for CheckedLanePlan {
    fn path(&self) -> &Path {
        &self.path
    }

    fn environments(&self) -> Vec<String> {
        self.environments
            .iter()
            .map(|e| e.name.value.clone())
            .collect()
    }

    fn render(&self, only: &[String], _: &Templates, mode: Mode) -> Result<Vec<EnvironmentRender>> {
        super::render_plan(self, only, mode)
    }

    fn render_with(&self, base: &Base, _: &Templates) -> Result<Vec<String>> {
        super::render_text(self, base)
    }

    fn status(&self, _: &Templates) -> Vec<EnvironmentStatus> {
        super::status(self)
    }

    fn edit(&self, env: &str, action: Action, _: &Templates) -> Result<Edit> {
        super::edit::edit(self, env, action)
    }

    /// Each request class's path through the chain.
    fn explain(&self, env: &str, _: &Templates) -> Result<Explained> {
        let e = super::explain_environment(self, env)?;
        let mut text = String::new();
        for p in &e.paths {
            text.push_str(&format!("{p}\n"));
        }
        for p in &e.problems {
            text.push_str(&format!("problem: {p}\n"));
        }
        Ok(Explained {
            json: serde_json::to_value(&e).unwrap_or_default(),
            text,
            ok: e.problems.is_empty(),
        })
    }

    fn export(
        &self,
        env: Option<&str>,
        target: Target,
        namespace: Option<&str>,
    ) -> Result<Exported> {
        let e = match env {
            Some(name) => match self.environments.iter().find(|e| e.name.value == name) {
                Some(e) => Some(e),
                None => {
                    return Err(
                        Diagnostic::new(format!("the plan has no environment `{name}`"))
                            .in_file(&self.path)
                            .into(),
                    );
                }
            },
            None => None,
        };
        match target {
            Target::Asm => super::export::asm(self, e, namespace),
            Target::Kruise => super::export::kruise(self, namespace),
            Target::ArgoRollouts(_) => Err(Diagnostic::new(format!(
                "`export argo-rollouts` reads a CanaryPlan, and {} is a LanePlan",
                self.path.display()
            ))
            .in_file(&self.path)
            .hint("Argo Rollouts has no lanes: export a LanePlan for `asm` or `kruise`")
            .into()),
        }
    }
}
