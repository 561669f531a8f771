//! Delivery states, as `pgbus.deliveries.state` stores them: the library's own
//! `pgbus::DeliveryState`, named here once so tests read `PENDING`, `DEAD`, ... and bind
//! them as query parameters rather than numbers in SQL.

use pgbus::DeliveryState;

/// The type of `pgbus.deliveries.state`.
pub type State = DeliveryState;

pub const PENDING: State = DeliveryState::Pending;
pub const RUNNING: State = DeliveryState::Running;
pub const DONE: State = DeliveryState::Done;
pub const DEAD: State = DeliveryState::Dead;
