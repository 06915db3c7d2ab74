//! Finds the Opal target a RoleMapping or Lockdown names, by id or by name.

use super::*;

pub(super) struct TargetResolver<'a> {
    pub(super) world: &'a World,
    pub(super) by_id: &'a FxHashMap<(TargetKind, &'a str), TargetIdx>,
    pub(super) by_name: &'a FxHashMap<(TargetKind, &'a str), Option<TargetIdx>>,
}

impl TargetResolver<'_> {
    pub(super) fn resolve(&self, target: &AccessTarget) -> Result<TargetIdx, MappingProblem> {
        match (&target.group, &target.resource) {
            (Some(group), _) => self.resolve_ref(TargetKind::Group, group),
            (None, Some(resource)) => self.resolve_ref(TargetKind::Resource, resource),
            (None, None) => Err(MappingProblem::TargetNotFound("an empty target".to_owned())),
        }
    }

    pub(super) fn resolve_ref(
        &self,
        kind: TargetKind,
        reference: &TargetRef,
    ) -> Result<TargetIdx, MappingProblem> {
        let label = |value: &str| {
            let kind = match kind {
                TargetKind::Group => "group",
                TargetKind::Resource => "resource",
            };
            format!("{kind} {value}")
        };
        if let Some(id) = &reference.id {
            return self
                .by_id
                .get(&(kind, id.as_str()))
                .copied()
                .ok_or_else(|| MappingProblem::TargetNotFound(label(id)));
        }
        let name = reference.name.as_deref().unwrap_or_default();
        match self.by_name.get(&(kind, name)) {
            Some(Some(target)) => Ok(*target),
            Some(None) => Err(MappingProblem::TargetAmbiguous(label(name))),
            None => Err(MappingProblem::TargetNotFound(label(name))),
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
