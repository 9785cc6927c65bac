//! The GatewayUpgrade as the commands see it (`kinds::Plan`).

use std::path::Path;

use super::plan::{self, CheckedGatewayUpgrade};
use crate::base::Base;
use crate::edit::{Action, Edit, LadderPlan, ladder_edit};
use crate::error::Result;
use crate::kinds::{Explained, Plan, Registration};
use crate::render::{EnvironmentRender, Mode};
use crate::status::EnvironmentStatus;
use crate::templates::Templates;
use crate::yaml::{Pos, Source};

/// `kind: GatewayUpgrade`.
pub const REGISTRATION: Registration = Registration {
    kind: plan::KIND,
    load: |source, root| Ok(Box::new(plan::load_in(source, root)?)),
    schema: || schemars::schema_for!(plan::GatewayUpgradeFile),
};

impl Plan for CheckedGatewayUpgrade {
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
        ladder_edit(
            LadderPlan {
                path,
                text: &self.source.text,
                name: &self.name,
                environment: env,
                stage: e.map(|e| &e.stage),
                ladder: &plan::STAGES,
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
        let mut e = crate::kinds::explain_routes(renders, &base);
        // A gateway canary is a pod share behind the gateway's Service, not a route weight.
        for line in super::explain_lines(self, Some(env))? {
            e.text.push_str(&line);
            e.text.push('\n');
        }
        Ok(e)
    }
}
