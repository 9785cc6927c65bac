//! parse → check → render → safety checks, from arbitrary input. The input is a plan and a
//! base separated by a `#--base--` line; without one it is the plan, against the runbook's base.
//! Any panic is a bug: every bad input must come back as a located error.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SEPARATOR: &str = "\n#--base--\n";
const RUNBOOK_BASE: &str = concat!(
    include_str!("../../fixtures/runbook/base/deployment.yaml"),
    "---\n",
    include_str!("../../fixtures/runbook/base/service.yaml"),
    "---\n",
    include_str!("../../fixtures/runbook/base/virtualservice.yaml"),
    "---\n",
    include_str!("../../fixtures/runbook/base/authorizationpolicy.yaml"),
);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (plan, base) = text.split_once(SEPARATOR).unwrap_or((text, RUNBOOK_BASE));
    let templates = canaryplan::Templates::builtin();
    if let Err(e) = canaryplan::render_text(plan, base, &templates) {
        // Rendering the message must not panic either.
        let _ = e.to_string();
    }
});
