//! Concurrency slots: a limit per instance (default 5) and optional lower limits per channel.
//! A job holds its permits from claim to the end of its run; the pullers ask only for as many
//! jobs as there are free slots, and are told ([`Slots::changes`]) when one frees.

use std::collections::BTreeMap;
use std::sync::Arc;
use taskwire_core::wire::Slots as SlotsWire;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

#[derive(Debug)]
pub struct Slots {
    instance: Arc<Semaphore>,
    total: u32,
    channels: BTreeMap<String, (Arc<Semaphore>, u32)>,
    /// Counts freed permits, so that a puller waiting on a long pull asks for more.
    freed: Arc<watch::Sender<u64>>,
}

/// Held by a running job; dropping it frees the slot(s).
#[derive(Debug)]
pub struct SlotPermit {
    instance: Option<OwnedSemaphorePermit>,
    channel: Option<OwnedSemaphorePermit>,
    freed: Arc<watch::Sender<u64>>,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        // The permits first, so a puller woken by the count sees them free.
        drop(self.channel.take());
        drop(self.instance.take());
        self.freed.send_modify(|n| *n += 1);
    }
}

impl Slots {
    pub fn new(total: u32, per_channel: &BTreeMap<String, u32>) -> Self {
        Self {
            instance: Arc::new(Semaphore::new(total as usize)),
            total,
            channels: per_channel
                .iter()
                .map(|(c, n)| (c.clone(), (Arc::new(Semaphore::new(*n as usize)), *n)))
                .collect(),
            freed: Arc::new(watch::channel(0).0),
        }
    }

    /// Changes each time a slot frees.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.freed.subscribe()
    }

    /// Free slots for a job from `channel` (None: the instance's own subject).
    pub fn free(&self, channel: Option<&str>) -> usize {
        let inst = self.instance.available_permits();
        match channel.and_then(|c| self.channels.get(c)) {
            Some((s, _)) => inst.min(s.available_permits()),
            None => inst,
        }
    }

    /// Takes a slot if one is free.
    pub fn try_acquire(&self, channel: Option<&str>) -> Option<SlotPermit> {
        let chan = match channel.and_then(|c| self.channels.get(c)) {
            Some((s, _)) => Some(s.clone().try_acquire_owned().ok()?),
            None => None,
        };
        let inst = self.instance.clone().try_acquire_owned().ok()?;
        Some(SlotPermit {
            instance: Some(inst),
            channel: chan,
            freed: self.freed.clone(),
        })
    }

    /// Used and total, for the registry.
    pub fn usage(&self) -> (SlotsWire, BTreeMap<String, SlotsWire>) {
        let used = |s: &Semaphore, total: u32| total - s.available_permits() as u32;
        (
            SlotsWire {
                used: used(&self.instance, self.total),
                total: self.total,
            },
            self.channels
                .iter()
                .map(|(c, (s, n))| {
                    (
                        c.clone(),
                        SlotsWire {
                            used: used(s, *n),
                            total: *n,
                        },
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_limit_is_within_instance_limit() {
        let s = Slots::new(3, &BTreeMap::from([("slow".to_string(), 1)]));
        let a = s.try_acquire(Some("slow")).unwrap();
        assert!(s.try_acquire(Some("slow")).is_none());
        assert_eq!(s.free(Some("slow")), 0);
        assert_eq!(s.free(None), 2);
        let _b = s.try_acquire(None).unwrap();
        let _c = s.try_acquire(Some("default")).unwrap();
        assert!(s.try_acquire(None).is_none());
        assert_eq!(s.usage().0, SlotsWire { used: 3, total: 3 });
        let changes = s.changes();
        assert!(!changes.has_changed().unwrap());
        drop(a);
        assert!(changes.has_changed().unwrap());
        assert_eq!(s.free(Some("slow")), 1);
    }
}
