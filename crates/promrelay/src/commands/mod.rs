//! One module per subcommand.

pub(crate) mod agent;
pub(crate) mod lint;
