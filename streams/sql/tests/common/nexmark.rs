//! The Nexmark event generator of fjord-streams' bench (`streams/benches/nexmark.rs`), with
//! events as JSON objects so that SQL can read them: per 50 events 1 person, 3 auctions and
//! 46 bids, in event-time order. Shared by the SQL bench and the SQL-vs-DSL tests.

#![allow(dead_code)]

use serde_json::{Value, json};

pub(crate) const BASE: i64 = 1_700_000_000_000;
const CITIES: [&str; 5] = ["Phoenix", "Portland", "Boise", "Seattle", "Redmond"];

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 31)
}

/// Event `i` and its event time, `per_ms` events per millisecond.
pub(crate) fn event(i: u64, per_ms: u64) -> (Value, i64) {
    let ts = BASE + (i / per_ms.max(1)) as i64;
    let epoch = i / 50;
    let offset = i % 50;
    let e = if offset == 0 {
        json!({"kind": "person", "id": 1000 + epoch, "name": format!("p{epoch}"), "city": CITIES[(mix(i) % 5) as usize]})
    } else if offset <= 3 {
        json!({
            "kind": "auction",
            "id": 1000 + epoch * 3 + offset - 1,
            "seller": 1000 + mix(i) % (epoch + 1),
            "category": 10 + mix(i + 1) % 5,
            "initial_bid": 100 + mix(i + 2) % 1000,
        })
    } else {
        let newest = 1000 + epoch * 3 + 2;
        let back = mix(i) % 100;
        json!({
            "kind": "bid",
            "auction": newest.saturating_sub(if back < 60 { back % 10 } else { back }),
            "bidder": 1000 + mix(i + 1) % (epoch + 1),
            "price": 100 + mix(i + 2) % 10_000,
        })
    };
    (e, ts)
}

/// q1: bid prices converted (× 0.908, integer arithmetic as in the DSL version).
pub(crate) const Q1: &str = "SELECT auction, bidder, price * 908 / 1000 AS price, \"timestamp\" FROM \"nexmark-events\" WHERE kind = 'bid'";

/// q5: per 10 s window sliding by 2 s, the most bids any auction got.
pub(crate) const Q5: &str = "WITH counts AS (SELECT window_start, auction, count(*) AS n FROM \"nexmark-events\" WHERE kind = 'bid' \
GROUP BY HOP(\"timestamp\", INTERVAL '2' SECOND, INTERVAL '10' SECOND), auction) \
SELECT CAST(window_start AS BIGINT) AS w, max(n) AS n FROM counts GROUP BY window_start";

/// q7: the highest bid per 10 s tumbling window.
pub(crate) const Q7: &str = "SELECT CAST(window_start AS BIGINT) AS w, max(price) AS price FROM \"nexmark-events\" WHERE kind = 'bid' \
GROUP BY TUMBLE(\"timestamp\", INTERVAL '10' SECOND)";
