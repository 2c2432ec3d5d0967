//! The streaming doors: the output stream of one job (`GET /api/v1/jobs/{id}/stream`, as a
//! WebSocket or as Server-Sent Events) in [`viewer`], and the multiplexed socket
//! (`GET /api/v1/ws`: submit, follow several jobs, stop or kill them, watch the job list) in
//! [`session`]. Each authenticates (audited), reads what the client sends (malformed frames
//! audited), calls the operations of `crate::ops`, and encodes `wire::api::Frame`s. Shared:
//! [`cursor`] (one viewer's place in a job's feed, and when it counts as too slow),
//! [`origin`] (which pages may open a socket), [`recheck`] (an open socket's token checked
//! again until it expires).

pub mod cursor;
pub mod origin;
pub mod recheck;
pub mod session;
pub mod viewer;
