//! Channel, user and connection queries answer for the whole cluster, from any node, and follow
//! both joins and leaves.

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_cluster_wide_from_every_node() {
    let c = Cluster::start(3).await;
    let mut c0a = c.node(0).client().await;
    c0a.subscribe("q-pub").await;
    let mut c0b = c.node(0).client().await;
    c0b.subscribe("q-pub").await;
    c0b.subscribe_presence("presence-q", r#"{"user_id":"u1"}"#)
        .await;
    let mut c1a = c.node(1).client().await;
    c1a.subscribe("q-pub").await;
    c1a.subscribe("q-only1").await;
    let mut c1b = c.node(1).client().await;
    c1b.subscribe_presence("presence-q", r#"{"user_id":"u2"}"#)
        .await;
    let mut c2a = c.node(2).client().await;
    c2a.subscribe_presence("presence-q", r#"{"user_id":"u1"}"#)
        .await;
    let mut c2b = c.node(2).client().await;
    c2b.subscribe_presence("presence-q", r#"{"user_id":"u3"}"#)
        .await;

    let publics = ["q-pub", "q-only1", "q-none"];
    let expected = json!({
        "status": [200, 200],
        "channels": {"channels":{"q-pub":{},"q-only1":{},"presence-q":{}}},
        "presence_list": {"channels":{"presence-q":{"user_count":3}}},
        "connections": 6,
        "presence_info": [200, {"occupied":true,"user_count":3,"subscription_count":4}],
        "users": ["u1","u2","u3"],
        "info:q-pub": [200, {"occupied":true,"subscription_count":3}],
        "info:q-only1": [200, {"occupied":true,"subscription_count":1}],
        "info:q-none": [200, {"occupied":false,"subscription_count":0}],
    });
    for i in 0..3 {
        let api = c.node(i).api();
        converge(
            &format!("queries on node {i}"),
            CONVERGE,
            expected.clone(),
            || cluster_view(&api, "presence-q", &publics),
        )
        .await;
        // The list with subscription counts, filtered.
        let (s, b) = api
            .get(
                &api.app_path("/channels"),
                &[("filter_by_prefix", "q-"), ("info", "subscription_count")],
            )
            .await;
        assert_eq!(
            (s, b),
            (
                200,
                json!({"channels":{"q-pub":{"subscription_count":3},"q-only1":{"subscription_count":1}}})
            ),
            "node {i}"
        );
        // A trigger's info counts the whole cluster too.
        let (s, b) = api
            .events(
                &json!({"name":"e","channels":["q-pub","presence-q"],"data":"x",
                            "info":"user_count,subscription_count"}),
            )
            .await;
        assert_eq!(
            (s, b),
            (
                200,
                json!({"channels":{"q-pub":{"subscription_count":3},"presence-q":{"user_count":3}}})
            ),
            "trigger info on node {i}"
        );
        let (s, b) = api
            .batch(json!([
                {"name":"e","channel":"q-pub","data":"1","info":"subscription_count"},
                {"name":"e","channel":"presence-q","data":"2","info":"user_count"}
            ]))
            .await;
        assert_eq!(
            (s, b),
            (
                200,
                json!({"batch":[{"subscription_count":3},{"user_count":3}]})
            ),
            "batch info on node {i}"
        );
    }

    // Leaves are reflected everywhere: node 1's public socket, one of u1's two sockets, then
    // u1's last one.
    c1a.close().await;
    c2a.close().await;
    c0b.close().await;
    let expected = json!({
        "status": [200, 200],
        "channels": {"channels":{"q-pub":{},"presence-q":{}}},
        "presence_list": {"channels":{"presence-q":{"user_count":2}}},
        "connections": 3,
        "presence_info": [200, {"occupied":true,"user_count":2,"subscription_count":2}],
        "users": ["u2","u3"],
        "info:q-pub": [200, {"occupied":true,"subscription_count":1}],
        "info:q-only1": [200, {"occupied":false,"subscription_count":0}],
        "info:q-none": [200, {"occupied":false,"subscription_count":0}],
    });
    for i in 0..3 {
        let api = c.node(i).api();
        converge(
            &format!("queries after leaves on node {i}"),
            CONVERGE,
            expected.clone(),
            || cluster_view(&api, "presence-q", &publics),
        )
        .await;
    }
    // And when everyone is gone, nothing is left anywhere.
    c0a.close().await;
    c1b.close().await;
    c2b.close().await;
    for i in 0..3 {
        let api = c.node(i).api();
        converge(
            &format!("empty cluster on node {i}"),
            CONVERGE,
            (json!({"channels":{}}), 0),
            || {
                let api = api.clone();
                async move {
                    let (_, b) = api.get(&api.app_path("/channels"), &[]).await;
                    (b, api.connections().await)
                }
            },
        )
        .await;
    }
}
