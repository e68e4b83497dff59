//! The deterministic simulation, 1,000 seeds: the switch's cores (core,
//! store-and-forward queue, link protocol, journal) against the
//! simulator's rules, with crashes, acquirer faults and connection resets
//! (see `acqswitch::simulation`). `acqswitch simulate --seeds N` runs more;
//! `--seed N` replays one.

use acqswitch::simulation::{run_many, SimulationConfig};

#[test]
fn a_thousand_seeds_lose_nothing() {
    let (summary, failed) = run_many(0, 1000, &SimulationConfig::default());
    if let Some(first) = failed.first() {
        for line in &first.trace {
            eprintln!("{line}");
        }
    }
    let found: Vec<String> = failed
        .iter()
        .flat_map(|r| {
            r.violations
                .iter()
                .map(move |v| format!("seed {}: {v}", r.seed))
        })
        .collect();
    assert!(found.is_empty(), "{found:#?}");
    assert_eq!(summary.runs, 1000);
    // The faults did happen, and approvals were both told and reversed.
    assert!(summary.crashes > 500, "{summary:?}");
    assert!(summary.resets > 200, "{summary:?}");
    assert!(summary.reversed > 1000, "{summary:?}");
    assert!(summary.told_approved > 1000, "{summary:?}");
    assert_eq!(
        summary.approved_at_acquirer,
        summary.told_approved + summary.reversed
    );
}
