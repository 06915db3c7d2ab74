//! Shared helpers for the test binaries under `tests/`.
//!
//! * [`kube_cluster`]: a real etcd + kube-apiserver on loopback for end-to-end tests.
//! * [`crds`]: the checked-in CRDs, loaded and applied to such a cluster.

pub mod crds;
pub mod kube_cluster;
