//! The `[console]` table: the live debug console (issue 11). On in the embedded development
//! default (`config.toml`), off when a config file leaves the table out.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::env::env_value;
use super::{parse_bool, ConfigError};

/// The environment variables of this table.
pub const CONSOLE_VARS: [&str; 2] = ["HERALD_CONSOLE_ENABLED", "HERALD_CONSOLE_ADMIN_TOKEN"];

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

impl ConsoleConfig {
    /// Applies `HERALD_CONSOLE_ENABLED` and `HERALD_CONSOLE_ADMIN_TOKEN` (empty: none).
    pub(super) fn apply_env(&mut self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        if let Some(v) = env_value(vars, "HERALD_CONSOLE_ENABLED") {
            self.enabled = parse_bool("HERALD_CONSOLE_ENABLED", v)?;
        }
        if let Some(v) = env_value(vars, "HERALD_CONSOLE_ADMIN_TOKEN") {
            self.admin_token = (!v.is_empty()).then(|| v.to_owned());
        }
        Ok(())
    }
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
    fn env_switches_it_and_sets_the_token() {
        let vars: HashMap<String, String> = [
            ("HERALD_CONSOLE_ENABLED", "1"),
            ("HERALD_CONSOLE_ADMIN_TOKEN", "tok"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let mut c = ConsoleConfig::default();
        c.apply_env(&vars).unwrap();
        assert!(c.enabled);
        assert_eq!(c.admin_token.as_deref(), Some("tok"));
        let bad: HashMap<String, String> =
            [("HERALD_CONSOLE_ENABLED".to_string(), "maybe".to_string())].into();
        assert!(c.apply_env(&bad).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<ConsoleConfig>("enable = true").is_err());
    }
}
