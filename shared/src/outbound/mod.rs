//! Outbound messages: the channel providers that send ([`channel`]) and the Telegram
//! router with its fallback chain, attempt log and queueing ([`telegram`]).

pub mod api;
pub mod channel;
pub mod channels;
pub mod telegram;
