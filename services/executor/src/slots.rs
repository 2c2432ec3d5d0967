//! Concurrency slots: a limit per instance (default 5) and optional lower limits per channel.
//! A job holds its permits from claim to the end of its run; the pullers fetch only as many
//! jobs as there are free slots.

use std::collections::BTreeMap;
use std::sync::Arc;
use taskwire_core::wire::Slots as SlotsWire;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Slots {
    instance: Arc<Semaphore>,
    total: u32,
    channels: BTreeMap<String, (Arc<Semaphore>, u32)>,
}

/// Held by a running job; dropping it frees the slot(s).
#[derive(Debug)]
pub struct SlotPermit {
    _instance: OwnedSemaphorePermit,
    _channel: Option<OwnedSemaphorePermit>,
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
        }
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
            _instance: inst,
            _channel: chan,
        })
    }

    /// Waits until a slot for `channel` is free (without taking it).
    pub async fn wait_free(&self, channel: Option<&str>) {
        if let Some((s, _)) = channel.and_then(|c| self.channels.get(c)) {
            drop(s.acquire().await);
        }
        drop(self.instance.acquire().await);
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
        drop(a);
        assert_eq!(s.free(Some("slow")), 1);
    }
}
