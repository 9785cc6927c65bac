//! Every rendered file of every fixture at every stage, as snapshots. Review a snapshot change
//! as you would a change to production configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn every_fixture_at_every_stage() {
    for (fixture, stage, scratch) in every_stage() {
        let mut text = String::new();
        for dir in scratch.overlays() {
            let rel = dir
                .strip_prefix(scratch.path())
                .unwrap()
                .display()
                .to_string();
            text.push_str(&scratch.tree(&rel));
        }
        insta::assert_snapshot!(format!("{fixture}__{stage}"), text);
    }
}

#[test]
fn final_streams() {
    for fixture in FIXTURES {
        let scratch = Scratch::fixture(fixture);
        for env in ["staging", "production", "dev", "qa", "prod"] {
            let r = scratch.run(&["render", "--stdout", "--env", env]);
            if r.code == 0 {
                insta::assert_snapshot!(format!("{fixture}__stream__{env}"), r.stdout);
            }
        }
    }
}
