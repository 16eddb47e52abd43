//! The traits business logic depends on. Adapters live in [`crate::adapters`].

pub mod clock;
pub mod queue;
pub mod secretbox;
pub mod table;

pub use clock::{Clock, ManualClock, SystemClock};
pub use queue::{
    MAX_BATCH, MAX_BODY_BYTES, MAX_DELAY, OutgoingMessage, Queue, QueueError, ReceivedMessage,
};
pub use secretbox::{EncryptionContext, Sealed, SecretBox, SecretBoxError};
pub use table::{
    AttrValue, CancelReason, Condition, Cursor, Index, Item, Key, Page, Query, SortKey, Table,
    TableError, TransactOp, Update,
};
