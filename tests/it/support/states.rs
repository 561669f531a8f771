//! Delivery states, as `pgbus.deliveries.state` stores them. Tests name a state only
//! through these (in Rust, and as query parameters rather than numbers in SQL), so that
//! moving to a typed state is a change to this file alone.

/// The type of `pgbus.deliveries.state`.
pub type State = i16;

pub const PENDING: State = 0;
pub const RUNNING: State = 1;
pub const DONE: State = 2;
pub const DEAD: State = 3;
