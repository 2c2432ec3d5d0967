//! Typed command parameters: the schema a catalog declares and the validation every value
//! passes before it can reach an argv. Parameters are data: validated values are substituted
//! into argv elements only, never into a shell string.

mod command;
mod param;

pub use command::{CommandInfo, check_command_name};
pub use param::{ParamError, ParamKind, ParamSpec, ParamValue, compile_pattern, validate_params};
