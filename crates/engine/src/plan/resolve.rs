//! Finds the Opal target a RoleMapping or Lockdown names, by id or by name.

use super::*;

pub(super) struct TargetResolver<'a> {
    pub(super) world: &'a World,
    pub(super) by_id: &'a FxHashMap<(TargetKind, &'a str), TargetIdx>,
    pub(super) by_name: &'a FxHashMap<(TargetKind, &'a str), Option<TargetIdx>>,
}

impl TargetResolver<'_> {
    pub(super) fn resolve(&self, target: &Target) -> Result<TargetIdx, MappingProblem> {
        let label = |value: &str| {
            let kind = match target.kind {
                TargetKind::Group => "group",
                TargetKind::Resource => "resource",
            };
            format!("{kind} {value}")
        };
        match &target.by {
            TargetRef::Id(id) => self
                .by_id
                .get(&(target.kind, id.as_str()))
                .copied()
                .ok_or_else(|| MappingProblem::TargetNotFound(label(id))),
            TargetRef::Name(name) => match self.by_name.get(&(target.kind, name.as_str())) {
                Some(Some(found)) => Ok(*found),
                Some(None) => Err(MappingProblem::TargetAmbiguous(label(name))),
                None => Err(MappingProblem::TargetNotFound(label(name))),
            },
        }
    }

    pub(super) fn describe(&self, target: TargetIdx) -> String {
        let target = &self.world.opal.targets[target as usize];
        match target.kind {
            TargetKind::Group => format!("group {}", target.name),
            TargetKind::Resource => format!("resource {}", target.name),
        }
    }
}
