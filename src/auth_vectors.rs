//! Every vector of `shared/pusher-protocol-vectors.py` (the protocol reference §9), ported, plus
//! the request-signing rules exercised through [`SignedRequest`] rather than on literal strings.

use super::*;
use base64::Engine;

fn shared_secret(channel: &str, master_key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(channel.as_bytes());
    h.update(master_key);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

const DOC_SECRET: &str = "7ad3773142a6692b25b8";
const GO_SECRET: &str = "4bf35003e819bb138249";
const GO_KEY: &str = "d41a439c438a100756f5";

#[test]
fn hmac_vectors() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("D1", DOC_SECRET, "1234.1234:private-foobar", "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"),
        ("D2", DOC_SECRET, r#"1234.1234::user::{"id":"12345"}"#, "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"),
        ("D3a", DOC_SECRET, r#"1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#, "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"),
        ("D3b", DOC_SECRET, r#"1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#, "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"),
        ("D4", DOC_SECRET, "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f", "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"),
        ("N1", "tofu", "123.456:test", "efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c"),
        ("N2", "tofu", "321.654:test", "f6ecb0a17d3e4f68aca28f1673197a7608587c09deb0208faa4b5519aee0a777"),
        ("N3", "tofu", "123.456:test1", "d5ab857f805433cb50562da96afa41688d7742a3c3a021ed15a4d991a4d8cf94"),
        ("N4", "tofu", "123.456:test2", "43affa6a09af1fb9ce1cadf176171346beaf7366673ec1e5920f68b3e97a466d"),
        ("N5", "1", "123.456:test", "584828bd6e80b2d177d2b28fde07b8e170abf87ccb5a791a50c933711fb8eb28"),
        ("N6", "2", "123.456:test", "269bbf3f7625db4e0d0525b617efa5915c3ae667fd222dc8e4cb94bc531f26f2"),
        ("N7", "tofu", r#"123.456:test:{"foo":"bar"}"#, "f41faf9ead2ea76772cc6b1168363057459f02499ae4d92e88229dc7f4efa2d4"),
        ("N8", "tofu", "1.1:test:\"ą§¶™€łü€ß£\"", "2a229263e89d9c50524fd80c2e88be2843379f6931e28995e2cc214282c9db0c"),
        ("N9", "tofu", r#"123.456::user::{"id":"45678"}"#, "f4b1fdeea7c93e32648c7230e32b172057c5623cace6cfce791c6e7035e0babd"),
        ("N10", "tofu", r#"123.456::user::{"id":"55555","user_name":"test"}"#, "b8a9f173455903792ae2b788add0c4c78ad7372b3ae7fb5769479276a1993743"),
        ("N11", "1", r#"123.456::user::{"id":"45678"}"#, "79bddf29fe8e2153dd5d8d569b3f45e5aeb26ae2eb4758879d844791b466cfa2"),
        ("N12", "2", r#"123.456::user::{"id":"45678"}"#, "a542498ffa6faf6de7c17a8106b923c042319bd73acfd1d274df32e269b55d1f"),
        ("N13", "tofu", "1.1::user::{\"id\":\"ą§¶™€łü€ß£\"}", "620494cee53d6c568b49598313194088afda37218f0d059af03c0c898ed61ff4"),
        ("N14", "tofu", r#"123.456:private-encrypted-bla:"foo""#, "962c48b78bf93d98ff4c92ee7dff04865821455b7b401e9d60a9e0a90af2c105"),
        ("N15", "tofu", r#"123.456:bla:"foo""#, "013ad3da0d88e0df6ae0a8184bef50b9c3933f2344499e6e3d1ad67fad799e20"),
        ("NQ1", "tofu", "GET\n/event\nauth_key=f00d&auth_timestamp=1234567890&auth_version=1.0&body_md5=165d5e6d7ca8f73b3853ce45addf42fc", "a650196dc427ebe837226f8565ca9232198c6d1b9455eaa72374a9dc0b620e7b"),
        ("NQ2", "tofu", "GET\n/event\nauth_key=f00d&auth_timestamp=1234567890&auth_version=1.0&baz=123454321&foo=bar", "d8bdbd31911fb7400a14fbd36fd7de053494725b64400ae5856deafe304b34a9"),
        ("NW1", "tofu", r#"{"time_ms":1403175510755,"events":[{"channel":"test_channel","name":"channel_vacated"}]}"#, "c17257e92037cd7de407ebc1ed174ceb7b2e518db127f44411b9ffc4f5b28cc5"),
        ("P1", "secret", "GET\n/some/obscure/api\nauth_key=key&auth_timestamp=1000&auth_version=1.0&body_md5=d41d8cd98f00b204e9800998ecf8427e&foo=bar", "5c49f04a95eedc9028b1e0e8de7c2c7ad63504a0e3b5c145d2accaef6c14dbac"),
        ("P2", "secret", "POST\n/some/obscure/api\nauth_key=key&auth_timestamp=1000&auth_version=1.0&body_md5=94232c5b8fc9272f6f73a1e36eb68fcf", "e05fa4cafee86311746ee3981d5581a5e4e87c27bbab0aeb1059e2df5c90258b"),
        ("P3", "bar", "345.23:private-channel", "89955e77e1b40e33df6d515a5ecbba86a01dc816a5b720da18a06fd26f7d92ff"),
        ("P4", "bar", "345.23:private-encrypted-channel", "fff0503dfe4929f5162efe4d1dacbce524b0d8e7e1331117a8651c0e74d369e3"),
        ("P5", "bar", r#"345.43245:presence-channel:{"user_id":"fred","user_info":{"key":"value"}}"#, "e80ba6439492c2113022c39297a87a948de14061cc67b5788e045645a68b8ccd"),
        ("P6", "thisisasecret", r#"12345.6789::user::{"id":"123","name":"John Smith"}"#, "0dddb208b53c7649f3fbbb86254a6e1986bc6f8b566423ea690c9ca773497373"),
        ("P7", "secret", r#"1.1:presence-c1:{"money": "1.32"}"#, "7f2ae5922800a20b9615543ce7c8e7d1c97115d108939410825ea690f308a05f"),
        ("H1", "thisisasecret", "1.1:testing_pusher-php", "751ccc12aeaa79d46f7c199bced5fa47527d3480b51fe61a0bd10438241bd52d"),
        ("H2", "thisisasecret", "45055.28877557:-azAZ9_=@,.;", "d1c20ad7684c172271f92c108e11b45aef07499b005796ae1ec5beb924f361c4"),
        ("H3", "thisisasecret", r#"45055.28877557:-azAZ9_=@,.;:{"user_id": "123"}"#, "3b3f1dcc4d7d2f95dd10ed05562397b3287b102d4cccfacbf30eed2f1ffa3d69"),
        ("H4", "thisisasecret", r#"12345.6789::user::{"id":"123"}"#, "fc713f433deb729d0d96f9e26ef054285cbc3e833ebe840b93722a2fa16a6a18"),
        ("H5", "thisisasecret", r#"{"hello":"world"}"#, "40e0ad3b9aa49529322879e84de1aaaf18bde1efe839ca263d540cc865510d25"),
        ("H6", "thisisasecret", r#"{"time_ms":1530710011901,"events":[{"name":"client_event","channel":"private-my-channel","event":"client-event","data":"Unencrypted","socket_id":"240621.35780774"}]}"#, "a19cab2af3ca1029257570395e78d5d675e9e700ca676d18a375a7083178df1c"),
        ("G1", GO_SECRET, "GET\n/apps/102015/channels\nauth_key=d41a439c438a100756f5&auth_timestamp=1427034994&auth_version=1.0&filter_by_prefix=presence-&info=user_count", "4d8a02edcc8a758b0162cd6da690a9a45fb8ae326a276dca1e06a0bc42796c11"),
        ("G2", GO_SECRET, "GET\n/apps/102015/channels\nauth_key=d41a439c438a100756f5&auth_timestamp=1427036787&auth_version=1.0", "df89248f87f6e6d028925e0b04d60f316527a865992ace6936afa91281d8bef0"),
        ("G3", GO_SECRET, "GET\n/apps/102015/channels/presence-session-d41a439c438a100756f5-4bf35003e819bb138249-ROpCFmgFhXY\nauth_key=d41a439c438a100756f5&auth_timestamp=1427053326&auth_version=1.0&info=user_count,subscription_count", "f93ceb31f396aef336226efe512aaf339bd5e39c7c2c04b81cc8681dc16ee785"),
        ("G4", GO_SECRET, "GET\n/apps/102015/channels/presence-session-d41a439c438a100756f5-4bf35003e819bb138249-nYJLy67qh52/users\nauth_key=d41a439c438a100756f5&auth_timestamp=1427053709&auth_version=1.0", "207feaf4e8efeb24e5f148011704251bf90e2059a5f97a3eb52d06178b11feca"),
        ("X1", GO_SECRET, "GET\n/apps/102015/channels/presence-session-d41a439c438a100756f5-4bf35003e819bb138249-ROpCFmgFhXY\nauth_key=d41a439c438a100756f5&auth_timestamp=1427053326&auth_version=1.0&info=user_count%2Csubscription_count", "5a6dacba1e8f3d7161df37ae901a85421c38b1db91155550848a59e04a8c5e09"),
    ];
    for (id, secret, msg, want) in cases {
        assert_eq!(sign(secret, msg.as_bytes()), *want, "vector {id}");
    }
}

#[test]
fn md5_vectors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "D4",
            r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#,
            "ec365a775a4cd0599faeb73354201b6f",
        ),
        ("NQ1", "example body", "165d5e6d7ca8f73b3853ce45addf42fc"),
        (
            "NT1",
            r#"{"name":"my_event","data":"{\"some\":\"data \"}","channels":["test_channel"],"info":"subscription_count"}"#,
            "d3a47b3241328a6432adf60c8e91b6fb",
        ),
        (
            "NT2",
            r#"{"name":"my_event","data":"{\"some\":\"data \"}","channels":["test_channel"],"socket_id":"123.567"}"#,
            "0478e1ed73804ae1be97cfa6554cf039",
        ),
        ("P1", "", "d41d8cd98f00b204e9800998ecf8427e"),
        (
            "P2",
            r#"{"foo": "bar"}"#,
            "94232c5b8fc9272f6f73a1e36eb68fcf",
        ),
        ("X2", "{}", "99914b932bd37a50b983c5e7c90ae93b"),
    ];
    for (id, body, want) in cases {
        assert_eq!(md5_hex(body.as_bytes()), *want, "vector {id}");
    }
}

#[test]
fn shared_secret_vectors() {
    let n14 = b64("zyrm8pvV2C9fJcBfhyXzvxbJVN/H7QLmbe0xJi1GhPU=");
    assert_eq!(
        shared_secret("private-encrypted-bla", &n14),
        "nlr49ISQHz91yS3cy/yWmW8wFMNeTnNL5tNHnbPJcLQ="
    );
    let p4 = b64("OHRXNUZRTG5pUTFzQlFGd3J3N3Q2VFZFc0paZDEweVk=");
    assert_eq!(
        shared_secret("private-encrypted-channel", &p4),
        "VmIsNZtCSteh8kazd2toc+ofhohBtUouQRSDtRvuyVI="
    );
    assert_eq!(
        shared_secret("private-encrypted-channel-a", &[b'a'; 32]),
        "Rp+wpkNpL89qhqco1JkIG31AVXyU8PUVJBr1B2MvdoA="
    );
}

#[test]
fn channel_and_user_auth_verify_the_documented_signatures() {
    let key = "278d425bdf160c739803";
    let ok = format!("{key}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");
    assert_eq!(
        verify_channel(key, DOC_SECRET, "1234.1234", "private-foobar", None, &ok),
        Ok(())
    );
    assert!(matches!(
        verify_channel(key, DOC_SECRET, "1234.1235", "private-foobar", None, &ok),
        Err(AuthError::BadSignature(_))
    ));
    let upper = ok.to_uppercase().replacen(&key.to_uppercase(), key, 1);
    assert!(
        verify_channel(key, DOC_SECRET, "1234.1234", "private-foobar", None, &upper).is_err(),
        "upper-case hex is refused"
    );
    assert!(matches!(
        verify_channel(
            "other",
            DOC_SECRET,
            "1234.1234",
            "private-foobar",
            None,
            &ok
        ),
        Err(AuthError::WrongKey(_))
    ));
    assert_eq!(
        verify_channel(key, DOC_SECRET, "1", "c", None, "nocolon"),
        Err(AuthError::Malformed)
    );
    let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
    let p = format!("{key}:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80");
    assert_eq!(
        verify_channel(
            key,
            DOC_SECRET,
            "1234.1234",
            "presence-foobar",
            Some(data),
            &p
        ),
        Ok(())
    );
    // Python's spaced JSON is signed as sent, never re-serialised.
    let p7 = "key:7f2ae5922800a20b9615543ce7c8e7d1c97115d108939410825ea690f308a05f";
    assert_eq!(
        verify_channel(
            "key",
            "secret",
            "1.1",
            "presence-c1",
            Some(r#"{"money": "1.32"}"#),
            p7
        ),
        Ok(())
    );
    let d2 = format!("{key}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba");
    assert_eq!(
        verify_user(key, DOC_SECRET, "1234.1234", r#"{"id":"12345"}"#, &d2),
        Ok(())
    );
}

fn req<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a [(String, String)],
    body: &'a [u8],
) -> SignedRequest<'a> {
    SignedRequest {
        method,
        path,
        query,
        body,
    }
}

#[test]
fn request_signing_d4_through_the_verifier() {
    let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    let q = parse_query("auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
    let r = req("POST", "/apps/3/events", &q, body);
    assert_eq!(
        r.verify("278d425bdf160c739803", DOC_SECRET, 1353088179 + 599),
        Ok(())
    );
    assert!(matches!(
        r.verify("278d425bdf160c739803", DOC_SECRET, 1353088179 + 601),
        Err(RequestAuthError::Timestamp { .. })
    ));
    let r = req("POST", "/apps/3/events", &q, b"{}");
    assert_eq!(
        r.verify("278d425bdf160c739803", DOC_SECRET, 1353088179),
        Err(RequestAuthError::BodyMd5)
    );
    assert_eq!(
        req("POST", "/apps/3/events", &q, body).verify("x", DOC_SECRET, 1353088179),
        Err(RequestAuthError::WrongKey)
    );
}

#[test]
fn request_signing_decodes_php_style_queries() {
    // G3 signed by Go (raw comma); PHP/Guzzle sends %2C and signs the decoded value.
    let sig = "f93ceb31f396aef336226efe512aaf339bd5e39c7c2c04b81cc8681dc16ee785";
    let path = "/apps/102015/channels/presence-session-d41a439c438a100756f5-4bf35003e819bb138249-ROpCFmgFhXY";
    for info in [
        "user_count,subscription_count",
        "user_count%2Csubscription_count",
    ] {
        let q = parse_query(&format!("auth_key={GO_KEY}&auth_timestamp=1427053326&auth_version=1.0&info={info}&auth_signature={sig}"));
        assert_eq!(
            req("GET", path, &q, b"").verify(GO_KEY, GO_SECRET, 1427053326),
            Ok(()),
            "{info}"
        );
    }
    // P1: Python sends the empty-body md5 on GETs and signs it.
    let q = parse_query("auth_key=key&auth_timestamp=1000&auth_version=1.0&body_md5=d41d8cd98f00b204e9800998ecf8427e&foo=bar&auth_signature=5c49f04a95eedc9028b1e0e8de7c2c7ad63504a0e3b5c145d2accaef6c14dbac");
    assert_eq!(
        req("GET", "/some/obscure/api", &q, b"").verify("key", "secret", 1000),
        Ok(())
    );
    // NQ2: keys sorted regardless of the order sent.
    let q = parse_query("foo=bar&baz=123454321&auth_version=1.0&auth_timestamp=1234567890&auth_key=f00d&auth_signature=d8bdbd31911fb7400a14fbd36fd7de053494725b64400ae5856deafe304b34a9");
    assert_eq!(
        req("GET", "/event", &q, b"").verify("f00d", "tofu", 1234567890),
        Ok(())
    );
}

#[test]
fn query_parsing() {
    assert_eq!(
        parse_query("a=b+c&d=%2C&e"),
        vec![
            ("a".into(), "b c".into()),
            ("d".into(), ",".into()),
            ("e".into(), String::new())
        ]
    );
    assert_eq!(percent_decode("/a%40b%"), "/a@b%");
}
