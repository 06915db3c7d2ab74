//! The operator running against the simulators and the real apiserver: convergence, drift
//! repair, HR changes, lockdowns, Observe/pause/breaker, leader election, crashes mid-apply,
//! webhooks, metrics.

pub mod harness;

mod converge;
mod crash;
mod hr_changes;
mod leader;
mod lockdown;
mod notify;
mod requests;
mod review;
mod safety;
mod tenancy;
mod webhooks;

use super::E2eTrial;

pub fn trials() -> Vec<E2eTrial> {
    [
        converge::trials(),
        leader::trials(),
        crash::trials(),
        review::trials(),
        lockdown::trials(),
        notify::trials(),
        requests::trials(),
        safety::trials(),
        tenancy::trials(),
        hr_changes::trials(),
        webhooks::trials(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
