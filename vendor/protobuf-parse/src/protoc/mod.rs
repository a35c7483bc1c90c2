//! Parse `.proto` files using `protoc` command.

pub(crate) mod command;
pub(crate) mod parse_and_typecheck;
