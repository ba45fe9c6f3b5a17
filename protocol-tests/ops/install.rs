//! `herald install`: the printed credentials and `.env` lines, `--write-config`, and a server
//! started on the written config accepting the printed key and secret.

use std::collections::HashMap;
use std::process::Command;

use crate::common::{Api, Client, PJS_QUERY};
use crate::proc::{temp_dir, Herald};

fn install(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("install")
        .args(args)
        .output()
        .expect("run herald install")
}

/// The `NAME=value` lines of the output, quotes removed.
fn env_lines(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

#[tokio::test]
async fn install_prints_reverb_env_lines_and_writes_a_working_config() {
    let dir = temp_dir("install");
    let cfg = dir.join("written.toml");
    let out = install(&[
        "--host",
        "ws.example.com",
        "--port",
        "0",
        "--scheme",
        "https",
        "--write-config",
        cfg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let vars = env_lines(&text);
    for name in [
        "BROADCAST_CONNECTION",
        "REVERB_APP_ID",
        "REVERB_APP_KEY",
        "REVERB_APP_SECRET",
        "REVERB_HOST",
        "REVERB_PORT",
        "REVERB_SCHEME",
        "VITE_REVERB_APP_KEY",
        "VITE_REVERB_HOST",
        "VITE_REVERB_PORT",
        "VITE_REVERB_SCHEME",
    ] {
        assert!(vars.contains_key(name), "{name} missing from:\n{text}");
    }
    assert_eq!(vars["REVERB_HOST"], "ws.example.com");
    assert_eq!(vars["REVERB_SCHEME"], "https");
    assert_eq!(vars["VITE_REVERB_APP_KEY"], "${REVERB_APP_KEY}");
    let (id, key, secret) = (
        &vars["REVERB_APP_ID"],
        &vars["REVERB_APP_KEY"],
        &vars["REVERB_APP_SECRET"],
    );
    assert!(
        id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit()),
        "{id}"
    );
    assert!(key.len() == 20 && secret.len() == 20 && key != secret);

    // A second run gives other credentials and refuses to overwrite without --force.
    let again = install(&["--write-config", cfg.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        written.contains(secret.as_str()),
        "config unchanged by the refused run"
    );
    let other = env_lines(&String::from_utf8(install(&[]).stdout).unwrap());
    assert_ne!(&other["REVERB_APP_KEY"], key);

    // The written config runs, and the printed key and secret work.
    let h = Herald::start(&dir, &written).await;
    let mut c = Client::connect_path(h.addr, &format!("/app/{key}?{PJS_QUERY}"), None).await;
    c.subscribe("installed").await;
    let mut api = Api::new(h.addr, "", key, secret);
    api.app_id = id.clone();
    api.trigger(&["installed"], "works", "{}").await;
    c.recv_event("works").await;

    let forced = install(&["--force", "--write-config", cfg.to_str().unwrap()]);
    assert!(forced.status.success());
    assert!(!std::fs::read_to_string(&cfg)
        .unwrap()
        .contains(secret.as_str()));
}
