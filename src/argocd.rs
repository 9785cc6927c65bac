//! Argo CD config management plugin conventions: which environment to render, from the
//! plugin parameter (`PARAM_ENVIRONMENT`, or `ARGOCD_APP_PARAMETERS`) or the application's
//! plugin environment (`ARGOCD_ENV_CANARYPLAN_ENV`).

use serde_json::Value;

use crate::error::{Diagnostic, Result};

/// The environment chosen by the Argo CD build environment, if any. `var` reads a variable.
pub fn environment_from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    if let Some(v) = non_empty(var("PARAM_ENVIRONMENT")) {
        return Ok(Some(v));
    }
    if let Some(params) = non_empty(var("ARGOCD_APP_PARAMETERS")) {
        let parsed: Value = serde_json::from_str(&params).map_err(|e| {
            Diagnostic::new(format!("ARGOCD_APP_PARAMETERS is not valid JSON: {e}"))
                .hint("Argo CD sets it; check the Application's plugin parameters")
        })?;
        let found = parsed
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str) == Some("environment"));
        if let Some(s) = found
            .and_then(|p| p.get("string"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            return Ok(Some(s.to_string()));
        }
    }
    Ok(non_empty(var("ARGOCD_ENV_CANARYPLAN_ENV")))
}
