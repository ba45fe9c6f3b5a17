//! Unit tests of the console tap: lazy when unwatched, per-app filtering, bounded with counted
//! drops, viewer count follows viewers' lifetimes.

use super::*;
use std::sync::atomic::AtomicBool;

fn api(app: &str, event: &str) -> ConsoleEvent {
    ConsoleEvent::ApiEvent {
        app: app.into(),
        channel: "c".into(),
        event: event.into(),
        size: 2,
        except: None,
    }
}

#[test]
fn unwatched_tap_never_builds_events() {
    let tap = Tap::new(4);
    let built = AtomicBool::new(false);
    tap.emit(|| {
        built.store(true, Ordering::Relaxed);
        api("a", "e")
    });
    assert!(!built.load(Ordering::Relaxed));
    assert!(!tap.watched());
}

#[tokio::test]
async fn viewer_sees_only_its_app_in_order() {
    let tap = Tap::new(8);
    let mut v = tap.watch("a");
    assert_eq!(tap.viewers(), 1);
    tap.emit(|| api("b", "other"));
    tap.emit(|| api("a", "one"));
    tap.emit(|| api("a", "two"));
    assert_eq!(*v.next().await.unwrap(), api("a", "one"));
    assert_eq!(*v.next().await.unwrap(), api("a", "two"));
    drop(v);
    assert_eq!(tap.viewers(), 0);
}

#[tokio::test]
async fn lagging_viewer_loses_oldest_and_it_is_counted() {
    let tap = Tap::new(2);
    let mut v = tap.watch("a");
    for i in 0..5 {
        tap.emit(|| api("a", &i.to_string()));
    }
    // Capacity 2: events 0..3 are gone (the viewer is told), 3 and 4 remain.
    let told = ConsoleEvent::Dropped {
        app: "a".into(),
        events: 3,
    };
    assert_eq!(*v.next().await.unwrap(), told);
    assert_eq!(*v.next().await.unwrap(), api("a", "3"));
    assert_eq!(*v.next().await.unwrap(), api("a", "4"));
    assert_eq!(tap.dropped(), 3);
}

#[test]
fn events_serialise_with_a_type_tag() {
    let json = serde_json::to_string(&api("a", "e")).unwrap();
    assert_eq!(
        json,
        r#"{"type":"api_event","app":"a","channel":"c","event":"e","size":2,"except":null}"#
    );
}
