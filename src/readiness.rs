//! Readiness gauges: one VM per proxy reads each operation's shared
//! counters on a tick, keeps its window ([`parallel_run_core::window`]) and
//! writes the verdict to gauges. That VM holds a lease in shared data,
//! renewed on every tick; when it stops (its worker is gone, its VM died),
//! another takes over once the lease runs out. (The first VM number is not
//! a safe choice: Envoy 1.40 configures a VM on the main thread that never
//! ticks, measured.) The work is per operation and tick, never per
//! request; the windows live in the VM, so a configuration push does not
//! restart them, but a mode change does: shadow-phase and cutover-phase
//! comparisons never mix.
//!
//! The leader also sets each operation's configuration gauges (mode,
//! target, thresholds; the mode alone for one that does not shadow, which
//! nothing judges): every VM setting the same values would define them
//! in every VM (Envoy keeps a handle table per VM), for nothing. It judges
//! the operations whose mode shadows (defining their counters in its own
//! VM, as a read needs a handle), and those that left shadowing while it
//! had a window for them, so that their `ready` drops; an operation that
//! never shadowed gets no window gauges. Both at most
//! [`PUBLISH_PER_TICK`] operations and [`crate::metrics::DEFINES_PER_TICK`]
//! definitions per call, so that one tick (and the leader's configuration)
//! stalls its worker a few milliseconds at most; the root has the leader
//! replace old diff-path lists in the same calls (diff_paths.rs).

use std::rc::{Rc, Weak};

use hashbrown::{HashMap, HashSet};
use parallel_run_core::counters::{self, Counter, Gauge};
use parallel_run_core::window::{self, Tally, Window};
use parallel_run_core::Mode;

use crate::host::Host;
use crate::metrics::{Budget, Spent, OUTCOMES};
use crate::vm::Plugin;

/// Ticks between evaluations. The gauges are read by scrapes every 10 s or
/// more; evaluating every 5 s keeps the main thread's work at a fifth of a
/// per-tick evaluation with 10,000 operations (4 reads and 9 writes each).
pub const EVALUATE_EVERY_TICKS: u64 = 5;

/// Operations whose configuration gauges the leader sets per call (its
/// configuration, then each tick), defined or not: setting the 6 gauges of
/// 1,000 operations it had all defined took a leader's configuration
/// 5.8 ms in Envoy (bench/push.py's configuration with 999 operations,
/// pushed twice, 2026-12-02, on the busy 2-core machine), about 1 µs a
/// gauge; 250 operations is about 1.5 ms, and 10,000 operations' gauges
/// are all set 40 ticks after a push.
pub const PUBLISH_PER_TICK: usize = 250;

/// The shared-data key of the lease: `<vm number> <expiry in seconds>`.
const LEASE_KEY: &str = "parallel_run.readiness_lease";

/// Seconds a lease lasts without renewal: a few ticks, so a stopped leader
/// is replaced quickly, and a slow tick does not hand the lease around.
const LEASE_S: u64 = 5;

#[derive(Default)]
pub struct Readiness {
    ticks: u64,
    /// Per operation id: the mode and window length the window is for.
    windows: HashMap<String, (Mode, u64, Window)>,
    /// The configuration whose gauges this VM sets as the leader, and the
    /// operation it goes on from.
    published: Weak<Plugin>,
    publish_next: usize,
}

impl Readiness {
    /// Operations this VM keeps a window for.
    #[cfg(test)]
    pub fn windows(&self) -> usize {
        self.windows.len()
    }

    /// Creates the lease key, held by nobody, so that every later write
    /// carries a compare-and-swap token (configuration runs on the main
    /// thread before any worker VM exists).
    pub fn prepare(host: &impl Host) {
        if let Some((None, None)) = host.shared_data(LEASE_KEY) {
            let _ = host.set_shared_data(LEASE_KEY, b"0 0", None);
        }
    }

    /// Takes or renews the lease; true while this VM holds it.
    fn lead(&mut self, host: &impl Host, vm_number: u64, now_s: u64) -> bool {
        let led = host.update(LEASE_KEY, |value| {
            let holder = value.and_then(|v| std::str::from_utf8(v).ok()).and_then(|text| {
                let (vm, expiry) = text.split_once(' ')?;
                Some((vm.parse::<u64>().ok()?, expiry.parse::<u64>().ok()?))
            });
            match holder {
                Some((vm, expiry)) if vm != vm_number && expiry > now_s => (None, false),
                _ => (Some(format!("{vm_number} {}", now_s + LEASE_S).into_bytes()), true),
            }
        });
        let led = led.unwrap_or(false);
        if !led {
            // Another VM leads: its windows are the ones that count.
            self.windows.clear();
            self.published = Weak::new();
        }
        led
    }

    /// Whether this VM holds the lease now, without renewing it.
    fn leads(host: &impl Host, vm_number: u64, now_s: u64) -> bool {
        let Some((Some(value), _)) = host.shared_data(LEASE_KEY) else {
            return false;
        };
        let text = std::str::from_utf8(&value).unwrap_or_default();
        let holder = text
            .split_once(' ')
            .and_then(|(vm, expiry)| Some((vm.parse::<u64>().ok()?, expiry.parse::<u64>().ok()?)));
        holder.is_some_and(|(vm, expiry)| vm == vm_number && expiry > now_s)
    }

    /// A configuration was accepted: the leader sets its gauges now.
    /// True when this VM leads.
    pub fn configured(&mut self, host: &impl Host, plugin: &Rc<Plugin>, vm_number: u64) -> bool {
        let leads = host
            .now_s()
            .is_some_and(|now_s| Readiness::leads(host, vm_number, now_s));
        if leads {
            let _ = self.publish(host, plugin, &mut Budget::per_tick());
        }
        leads
    }

    /// Sets the configuration gauges of `plugin`, and defines the outcome
    /// counters of the operations that shadow, once per configuration and
    /// leadership; new definitions within `budget` and at most
    /// [`PUBLISH_PER_TICK`] operations, the rest at the next tick.
    fn publish(&mut self, host: &impl Host, plugin: &Rc<Plugin>, budget: &mut Budget) -> Result<(), Spent> {
        if !std::ptr::eq(self.published.as_ptr(), Rc::as_ptr(plugin)) {
            self.published = Rc::downgrade(plugin);
            self.publish_next = 0;
        }
        for _ in 0..PUBLISH_PER_TICK {
            let Some(operation) = plugin.plan.operations.get(self.publish_next) else {
                break;
            };
            let index = self.publish_next;
            let shadows = operation.shadow().is_some();
            for gauge in Gauge::ALL {
                // The mode alone for one that does not shadow (counters.rs).
                if let Some(value) = counters::config_gauge_value(operation, gauge) {
                    plugin.gauges.set_within(host, index, gauge, value, budget)?;
                }
            }
            // Its comparisons exist at 0 before the first one, for
            // Prometheus' increase() (metrics.rs).
            if shadows {
                plugin.counters.define_within(host, index, &OUTCOMES, budget)?;
            }
            self.publish_next += 1;
        }
        Ok(())
    }

    /// One tick: true when this VM leads.
    #[inline(never)] // compiled alone by V8: crate doc, "Function size"
    pub fn tick(&mut self, host: &impl Host, plugin: &Rc<Plugin>, vm_number: u64) -> bool {
        let Some(now_s) = host.now_s() else {
            return false;
        };
        if !self.lead(host, vm_number, now_s) {
            return false;
        }
        let budget = &mut Budget::per_tick();
        // Spent: it goes on at the next tick.
        let _ = self.publish(host, plugin, budget);
        self.ticks += 1;
        if self.ticks % EVALUATE_EVERY_TICKS != 1 {
            return true;
        }
        let plan = &plugin.plan;
        let live: HashSet<&str> = plan.operations.iter().map(|op| op.id.as_str()).collect();
        self.windows.retain(|id, _| live.contains(id.as_str()));
        for (index, operation) in plan.operations.iter().enumerate() {
            let rule = operation.settings.readiness;
            let shadows = operation.shadow().is_some();
            // One that does not shadow is judged only while it has a window
            // (it left shadowing: its `ready` must drop), never defined for.
            if !shadows && !self.windows.contains_key(operation.id.as_str()) {
                continue;
            }
            let mut value = |counter| plugin.counters.value_within(host, index, counter, budget);
            // Not defined yet and the tick's budget spent: judged later.
            let (Ok(Some(shadowed)), Ok(Some(matched)), Ok(Some(unmatched)), Ok(Some(failed))) = (
                value(Counter::Shadowed),
                value(Counter::Matched),
                value(Counter::Unmatched),
                value(Counter::Failed),
            ) else {
                continue;
            };
            let tally = Tally {
                shadowed,
                matched,
                unmatched,
                failed,
            };
            let fresh = || (operation.mode, rule.window_s, Window::new(rule.window_s));
            let entry = self.windows.entry_ref(operation.id.as_str()).or_insert_with(fresh);
            if (entry.0, entry.1) != (operation.mode, rule.window_s) {
                *entry = fresh();
            }
            let window = &mut entry.2;
            window.observe(now_s, tally);
            let (evaluation, held_for) = window.judge(
                now_s,
                &rule,
                operation.settings.target_match_rate,
                operation.settings.min_samples,
            );
            let ready = shadows && evaluation.meets.is_ok() && held_for >= rule.ready_after_s;
            let gauges = [
                (Gauge::Ready, u64::from(ready)),
                (Gauge::WindowComparisons, evaluation.tally.comparisons()),
                (Gauge::WindowMatched, evaluation.tally.matched),
                (Gauge::WindowFailed, evaluation.tally.failed),
                (
                    Gauge::MatchRateBp,
                    evaluation.match_rate.map_or(0, window::basis_points),
                ),
                (
                    Gauge::MatchRateLowerBp,
                    window::basis_points(evaluation.match_rate_lower),
                ),
                (Gauge::ReadyForS, if evaluation.meets.is_ok() { held_for } else { 0 }),
            ];
            // Until the operation has shadowed anything (in any VM of this
            // proxy: counters never go back), every window gauge is 0, and
            // readers take an absent one for 0: `ready` alone says it. An
            // idle operation in shadow keeps 6 stats fewer, about 1 KiB of
            // Envoy's heap (174 bytes a stat, measured: bench/RESULTS.md).
            let judged = gauges
                .into_iter()
                .filter(|&(gauge, _)| tally.shadowed > 0 || gauge == Gauge::Ready);
            for (gauge, value) in judged {
                // One the budget cannot define yet is set at the next evaluation.
                let _ = plugin.gauges.set_within(host, index, gauge, value, budget);
            }
        }
        true
    }
}
