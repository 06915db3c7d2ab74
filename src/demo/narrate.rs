//! How the story is told: plain lines, a spinner on a terminal, and the summary table.

use super::*;

/// Example lines printed per step and kind of change.
pub(super) const EXAMPLES: usize = 4;

/// Writes the story: plain lines, plus a spinner while a sync runs on a terminal.
pub(super) struct Narrator {
    pub(super) quiet: bool,
    pub(super) terminal: bool,
    pub(super) step_number: usize,
}

impl Narrator {
    pub(super) fn new(quiet: bool) -> Self {
        Self {
            quiet,
            terminal: std::io::stdout().is_terminal(),
            step_number: 0,
        }
    }

    pub(super) fn line(&mut self, text: impl AsRef<str>) -> Result<(), DemoError> {
        if self.quiet {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", text.as_ref()).map_err(DemoError::Output)
    }

    pub(super) fn heading(&mut self, step: Step) -> Result<(), DemoError> {
        self.step_number += 1;
        if self.step_number > 1 {
            self.line("")?;
        }
        self.line(format!(
            "[{}/{}] {}",
            self.step_number,
            Step::ALL.len(),
            capitalized(step.title())
        ))
    }

    /// Wrapped prose under a heading.
    pub(super) fn text(&mut self, text: &str) -> Result<(), DemoError> {
        let mut line = String::from("  ");
        for word in text.split_whitespace() {
            if line.len() + word.len() > 98 && !line.trim().is_empty() {
                self.line(&line)?;
                line = String::from("  ");
            }
            if line.len() > 2 {
                line.push(' ');
            }
            line.push_str(word);
        }
        if line.trim().is_empty() {
            return Ok(());
        }
        self.line(&line)
    }

    /// A detail line under a short label, so labels line up.
    pub(super) fn note(&mut self, label: &str, text: impl AsRef<str>) -> Result<(), DemoError> {
        self.line(format!("    {label:<9} {}", text.as_ref()))
    }

    /// Awaits `work`, showing a spinner meanwhile when stdout is a terminal.
    pub(super) async fn while_running<T>(
        &mut self,
        work: impl Future<Output = T>,
    ) -> Result<T, DemoError> {
        if self.quiet {
            return Ok(work.await);
        }
        if !self.terminal {
            self.line("  syncing (observe HR and Opal, plan, apply, confirm) ...")?;
            return Ok(work.await);
        }
        const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_millis(80));
        let mut frame = 0usize;
        let mut work = std::pin::pin!(work);
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = ticker.tick() => {
                    let mut stdout = std::io::stdout().lock();
                    write!(
                        stdout,
                        "\r\x1b[2K  {} syncing: observe, plan, apply, confirm … {:.1} s",
                        FRAMES[frame % FRAMES.len()],
                        started.elapsed().as_secs_f64()
                    )
                    .and_then(|()| stdout.flush())
                    .map_err(DemoError::Output)?;
                    frame += 1;
                }
            }
        };
        let mut stdout = std::io::stdout().lock();
        write!(stdout, "\r\x1b[2K")
            .and_then(|()| stdout.flush())
            .map_err(DemoError::Output)?;
        Ok(result)
    }

    pub(super) fn outcome(
        &mut self,
        report: &StepReport,
        outcome: &SyncOutcome,
    ) -> Result<(), DemoError> {
        if self.quiet {
            return Ok(());
        }
        let mut verdict = format!(
            "  {} granted, {} revoked",
            report.grants(),
            report.revocations()
        );
        if report.held > 0 {
            let _ = write!(verdict, ", {} held", report.held);
        }
        if report.failed > 0 {
            let _ = write!(verdict, ", {} failed", report.failed);
        }
        let _ = write!(
            verdict,
            " in {:.2} s; {}",
            report.elapsed.as_secs_f64(),
            convergence(report)
        );
        self.line(verdict)?;
        if let Some(gate) = &report.hr_gate {
            self.note("HR gate", gate)?;
            if report.hr_failures > 0 {
                self.note(
                    "HR",
                    format!(
                        "BambooHR failed {} request(s); the client honoured Retry-After, \
                     then gave up within its retry budget",
                        report.hr_failures
                    ),
                )?;
            }
        }
        if let Some(reason) = &report.breaker {
            self.note("breaker", format!("tripped: {reason}"))?;
            self.note(
                "breaker",
                format!(
                    "nothing is revoked unless a person approves exactly this plan: \
                 annotate the AccessPolicy with opal-operator.io/approve-plan: {}",
                    report.plan_hash
                ),
            )?;
        }
        for action in [ChangeAction::Grant, ChangeAction::Revoke] {
            let changes: Vec<&Change> = report
                .changes
                .iter()
                .filter(|c| c.action == action)
                .collect();
            for change in changes.iter().take(EXAMPLES) {
                self.note(action_word(change.action), change_line(change))?;
            }
            if changes.len() > EXAMPLES {
                self.note("", format!("… and {} more", changes.len() - EXAMPLES))?;
            }
        }
        let held: Vec<&(Operation, Withheld)> = outcome
            .plan
            .withheld
            .iter()
            .filter(|(_, why)| *why != Withheld::Observe)
            .collect();
        for (op, why) in held.iter().take(EXAMPLES) {
            let why = match why {
                Withheld::Breaker => "breaker",
                Withheld::HrGate => "HR gate",
                Withheld::Observe => "observe",
            };
            self.note(
                "held",
                format!(
                    "{:<6} {:<33} {:<30} {why}",
                    action_word(op.action),
                    op.target_label(),
                    op.user_email
                ),
            )?;
        }
        if held.len() > EXAMPLES {
            self.note("", format!("… and {} more", held.len() - EXAMPLES))?;
        }
        for (op, outcome) in &outcome.execution.outcomes {
            if let OperationOutcome::Failed { message, .. } = outcome {
                self.note(
                    "failed",
                    format!(
                        "{} {} {}: {message}",
                        action_word(op.action),
                        op.target_label(),
                        op.user_email
                    ),
                )?;
            }
        }
        Ok(())
    }

    pub(super) fn notifications(&mut self, notes: &NotificationSummary) -> Result<(), DemoError> {
        self.line("")?;
        self.line(format!(
            "Notifications (outbox drained): {} of {} delivered",
            notes.delivered.len(),
            notes.queued
        ))?;
        for note in &notes.delivered {
            self.note("notify", delivery_line(note))?;
        }
        for failure in &notes.failed {
            self.note("failed", failure)?;
        }
        for refusal in &notes.refused {
            self.note("refused", refusal)?;
        }
        if notes.undelivered > 0 {
            self.note(
                "notify",
                format!(
                    "{} message(s) still queued when the grace period ended",
                    notes.undelivered
                ),
            )?;
        }
        Ok(())
    }

    pub(super) fn summary(&mut self, summary: &DemoSummary) -> Result<(), DemoError> {
        self.line("")?;
        self.line("Summary")?;
        self.line(format!(
            "  {:<3} {:<42} {:>7} {:>7} {:>6} {:<9} {}",
            "#", "step", "granted", "revoked", "held", "safety", "converged"
        ))?;
        for (index, report) in summary.steps.iter().enumerate() {
            let safety = match (&report.hr_gate, &report.breaker) {
                (Some(_), Some(_)) => "HR gate+breaker",
                (Some(_), None) => "HR gate",
                (None, Some(_)) => "breaker",
                (None, None) => "-",
            };
            self.line(format!(
                "  {:<3} {:<42} {:>7} {:>7} {:>6} {:<9} {}",
                index + 1,
                report.step.title(),
                report.grants(),
                report.revocations(),
                report.held,
                safety,
                convergence(report)
            ))?;
        }
        let grants: usize = summary.steps.iter().map(StepReport::grants).sum();
        let revocations: usize = summary.steps.iter().map(StepReport::revocations).sum();
        self.line(format!(
            "  {} syncs, {} grants and {} revocations applied, in {:.1} s",
            summary.steps.len(),
            grants,
            revocations,
            summary.elapsed.as_secs_f64()
        ))?;
        let notes = &summary.notifications;
        self.line(format!(
            "  {} notifications queued: {} delivered, {} failed, {} refused, {} left queued",
            notes.queued,
            notes.delivered.len(),
            notes.failed.len(),
            notes.refused.len(),
            notes.undelivered
        ))?;
        self.line(format!(
            "  {} now holds: {}",
            cast::LOCKED,
            access_words(summary.access_of(cast::LOCKED))
        ))?;
        self.line(format!(
            "  {} now holds: {}",
            cast::LEAVER,
            access_words(summary.access_of(cast::LEAVER))
        ))
    }
}

/// One delivered message as people read it: where it went, what it did there, and its title.
pub(super) fn delivery_line(note: &DeliveredNotification) -> String {
    let place = match &note.receipt {
        Receipt::Posted { .. } => format!("{} {}", note.kind, channels::SLACK_CONVERSATION),
        Receipt::Ticket {
            key,
            created,
            action,
        } => {
            let found = match (*created, note.attempts) {
                (true, _) => "opened",
                (false, 1) => "already open (found by its label)",
                (false, _) => "found by its label on the retry, not opened twice,",
            };
            let closed = match action {
                TicketAction::Record | TicketAction::Resolve => " and closed",
                TicketAction::Open | TicketAction::Update => "",
            };
            format!("{} {key} {found}{closed}", note.kind)
        }
        Receipt::Paged { dedup_key } => format!("{} paged (dedup_key {dedup_key})", note.kind),
        other => format!("{} {other:?}", note.kind),
    };
    let attempts = if note.attempts > 1 {
        format!(" ({} attempts)", note.attempts)
    } else {
        String::new()
    };
    format!("{place}: {}{attempts}", note.title)
}

pub(super) fn access_words(grants: &[HeldGrant]) -> String {
    if grants.is_empty() {
        "nothing".to_owned()
    } else {
        grants
            .iter()
            .map(|g| g.target.clone())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub(super) fn convergence(report: &StepReport) -> &'static str {
    match (
        report.converged,
        report.held > 0 || report.hr_gate.is_some(),
    ) {
        (true, false) => "converged",
        (true, true) => "held by the safety rails",
        (false, _) => "NOT converged",
    }
}

pub(super) fn action_word(action: ChangeAction) -> &'static str {
    match action {
        ChangeAction::Grant => "grant",
        ChangeAction::Revoke => "revoke",
    }
}

pub(super) fn change_line(change: &Change) -> String {
    let target = if change.access_level.is_empty() {
        change.target.clone()
    } else {
        format!("{} [{}]", change.target, short_level(&change.access_level))
    };
    let cause = change
        .cause
        .strip_prefix("RoleMapping ")
        .unwrap_or(&change.cause);
    format!("{target:<40} {:<30} {cause}", change.user)
}

/// The last path segment of an ARN-like remote ID, which is what people recognise.
pub(super) fn short_level(remote_id: &str) -> &str {
    remote_id.rsplit('/').next().unwrap_or(remote_id)
}

pub(super) fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
