//! The RevisionUpgrade as the commands see it (`kinds::Plan`).

use std::path::Path;

use super::plan::{self, CheckedRevisionUpgrade};
use crate::base::Base;
use crate::edit::{Action, Edit, LadderPlan, ladder_edit};
use crate::error::Result;
use crate::kinds::{Explained, Plan, Registration};
use crate::render::{EnvironmentRender, Mode};
use crate::status::EnvironmentStatus;
use crate::templates::Templates;
use crate::yaml::{Pos, Source};

/// `kind: RevisionUpgrade`.
pub const REGISTRATION: Registration = Registration {
    kind: plan::KIND,
    load: |source, root| Ok(Box::new(plan::load_in(source, root)?)),
    schema: || schemars::schema_for!(plan::RevisionUpgradeFile),
};

impl Plan for CheckedRevisionUpgrade {
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
        let path = self.path.as_path();
        let e = self.environments.iter().find(|e| e.name.value == env);
        let diag = |pos: Pos, m: String| self.diag(pos, m);
        let ladder = self.ladder();
        ladder_edit(
            LadderPlan {
                path,
                text: &self.source.text,
                name: &self.name,
                environment: env,
                stage: e.map(|e| &e.stage),
                ladder: &ladder,
                summary: super::summary,
                diag: &diag,
            },
            action,
            |text| {
                let edited = plan::load_in(Source::from_text(path, text), self.root.clone())?;
                super::render_plan(&edited, &[env.to_string()], Mode::Overlay)?;
                Ok(Box::new(edited))
            },
        )
    }

    fn explain(&self, env: &str, _: &Templates) -> Result<Explained> {
        let renders = super::render_plan(self, &[env.to_string()], Mode::Stream)?;
        let base = crate::base::load(&self.dir.join(&self.base.value), &self.root)?;
        Ok(crate::kinds::explain_routes(renders, &base))
    }
}
