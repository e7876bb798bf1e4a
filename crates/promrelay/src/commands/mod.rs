//! One module per subcommand.

pub(crate) mod agent;
pub(crate) mod gateway;
pub(crate) mod lint;
pub(crate) mod token;
