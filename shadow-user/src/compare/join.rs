//! Meets the production and the shadow answer of one request (they arrive in either order,
//! on different threads), bounded: a half that waits too long is forgotten and counted.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use prometheus_client::metrics::counter::Counter;

use super::Role;

/// Halves waiting for their other side, at most this many.
const MAX_WAITING: usize = 65_536;

#[derive(Debug, Default)]
struct Waiting {
    /// Request id → (role that answered, its status class).
    halves: HashMap<u64, (Role, usize)>,
    /// Ids in arrival order, for eviction.
    order: VecDeque<u64>,
}

/// The meeting point.
#[derive(Debug, Default)]
pub struct Join {
    waiting: Mutex<Waiting>,
    /// Halves evicted before their other side came.
    pub unmatched: Counter,
}

impl Join {
    /// Records `role`'s class for request `id`; returns the other side's class if it had
    /// already answered.
    pub fn meet(&self, id: u64, role: Role, class: usize) -> Option<usize> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match waiting.halves.get(&id) {
            Some((other_role, other_class)) if *other_role != role => {
                let other = *other_class;
                waiting.halves.remove(&id);
                return Some(other);
            }
            Some(_) => return None,
            None => {}
        }
        while waiting.halves.len() >= MAX_WAITING {
            match waiting.order.pop_front() {
                Some(old) => {
                    if waiting.halves.remove(&old).is_some() {
                        self.unmatched.inc();
                    }
                }
                None => break,
            }
        }
        waiting.halves.insert(id, (role, class));
        waiting.order.push_back(id);
        // Ids already met leave stale entries in `order`; drop them when they dominate.
        if waiting.order.len() > 2 * MAX_WAITING {
            let Waiting { halves, order } = &mut *waiting;
            order.retain(|id| halves.contains_key(id));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_meet_in_either_order() {
        let join = Join::default();
        assert_eq!(join.meet(1, Role::Production, 1), None);
        assert_eq!(join.meet(1, Role::Shadow, 4), Some(1));
        assert_eq!(join.meet(2, Role::Shadow, 1), None);
        assert_eq!(join.meet(2, Role::Production, 1), Some(1));
        assert_eq!(join.unmatched.get(), 0);
    }

    #[test]
    fn at_most_max_waiting_halves_wait_the_oldest_given_up_first() {
        let join = Join::default();
        for id in 0..MAX_WAITING as u64 {
            assert_eq!(join.meet(id, Role::Production, 1), None);
        }
        assert_eq!(join.unmatched.get(), 0, "all fit");
        join.meet(MAX_WAITING as u64, Role::Production, 1);
        assert_eq!(join.unmatched.get(), 1);
        // The oldest is gone: its shadow answer now waits in turn; the next oldest met.
        assert_eq!(join.meet(0, Role::Shadow, 1), None);
        assert_eq!(join.meet(2, Role::Shadow, 2), Some(1));
    }

    #[test]
    fn a_second_answer_of_the_same_side_is_no_other_half() {
        let join = Join::default();
        assert_eq!(join.meet(7, Role::Production, 1), None);
        assert_eq!(join.meet(7, Role::Production, 3), None);
        // The first production half still waits for the shadow's.
        assert_eq!(join.meet(7, Role::Shadow, 1), Some(1));
    }
}
