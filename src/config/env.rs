//! Environment variables: which ones Herald reads, how a value is looked up, and the parser for
//! Laravel `.env` files.

use std::collections::HashMap;

use super::observability::OBSERVABILITY_VARS;
use super::scaling::REDIS_VARS;

/// Whether Herald reads the environment variable `name`: any `REVERB_*`, Laravel's Redis
/// connection variables ([`REDIS_VARS`]) and Herald's own [`OBSERVABILITY_VARS`]. The binary passes exactly these from the process
/// environment to [`super::Config::apply_env`].
pub fn is_read_var(name: &str) -> bool {
    name.starts_with("REVERB_") || REDIS_VARS.contains(&name) || OBSERVABILITY_VARS.contains(&name)
}

/// The trimmed value of `key`; an empty value counts as unset, so the layer below wins.
pub(super) fn env_value<'a>(vars: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    vars.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// Parses a Laravel `.env` file: `KEY=value`, `export KEY=value`, quotes, `#` comments and
/// `${OTHER}` references to earlier keys. Malformed lines are skipped, as phpdotenv is lenient
/// about lines Herald does not read anyway.
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_string();
        let raw = raw.trim();
        let value = if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.rsplit_once('"')) {
            inner.0.replace("\\n", "\n").replace("\\\"", "\"")
        } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.rsplit_once('\'')) {
            inner.0.to_string()
        } else {
            raw.split(" #").next().unwrap_or("").trim().to_string()
        };
        let value = expand_refs(&value, &out);
        out.insert(key, value);
    }
    out
}

fn expand_refs(value: &str, known: &HashMap<String, String>) -> String {
    let mut result = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        result.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                let name = &rest[start + 2..start + end];
                result.push_str(known.get(name).map(String::as_str).unwrap_or(""));
                rest = &rest[start + end + 1..];
            }
            None => {
                result.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    result.push_str(rest);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laravel_env_file_parses() {
        let vars = parse_env_file(
            "# comment\nREVERB_APP_ID=123\nREVERB_APP_KEY=\"quoted key\"\nexport REVERB_HOST='h'\nVITE_KEY=\"${REVERB_APP_KEY}\"\nX=1 # trailing\n",
        );
        assert_eq!(vars["REVERB_APP_ID"], "123");
        assert_eq!(vars["REVERB_APP_KEY"], "quoted key");
        assert_eq!(vars["REVERB_HOST"], "h");
        assert_eq!(vars["VITE_KEY"], "quoted key");
        assert_eq!(vars["X"], "1");
    }

    #[test]
    fn read_vars_are_reverb_and_the_redis_connection() {
        for name in [
            "REVERB_APP_ID",
            "REVERB_SCALING_ENABLED",
            "REVERB_SCALING_CHANNEL",
            "REDIS_URL",
            "REDIS_HOST",
            "REDIS_PORT",
            "REDIS_USERNAME",
            "REDIS_PASSWORD",
            "REDIS_DB",
        ] {
            assert!(is_read_var(name), "{name}");
        }
        for name in [
            "REDIS_PREFIX",
            "REDIS_TIMEOUT",
            "REDIS_CLIENT",
            "PATH",
            "VITE_REVERB_HOST",
        ] {
            assert!(!is_read_var(name), "{name}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let vars: HashMap<String, String> = [("A", "  "), ("B", " x ")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(env_value(&vars, "A"), None);
        assert_eq!(env_value(&vars, "B"), Some("x"));
        assert_eq!(env_value(&vars, "C"), None);
    }
}
