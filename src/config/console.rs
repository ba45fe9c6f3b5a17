//! The `[console]` table: the live debug console (issue 11). On in the embedded development
//! default (`config.toml`), off when a config file leaves the table out.

use serde::{Deserialize, Serialize};

/// The `[console]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve `/console` (on the metrics listener when it is on, else on the main port).
    pub enabled: bool,
    /// A token that signs in to any app's console, besides each app's own id + secret.
    /// Masked when the config is printed.
    pub admin_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_when_the_table_is_absent() {
        let c: ConsoleConfig = toml::from_str("").unwrap();
        assert!(!c.enabled);
        assert_eq!(c.admin_token, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<ConsoleConfig>("enable = true").is_err());
    }
}
