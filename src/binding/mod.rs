//! Protocol bindings of CloudEvents: how an event travels on each transport meshline speaks.

pub mod kafka;
