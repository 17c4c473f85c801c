//! The examples in `streams/examples/`, run against a real broker.

use anyhow::Result;

use crate::harness::TestBroker;

#[path = "../../examples/click_enrichment.rs"]
#[allow(dead_code, unreachable_pub)]
mod click_enrichment;
#[path = "../../examples/orders_payments.rs"]
#[allow(dead_code, unreachable_pub)]
mod orders_payments;
#[path = "../../examples/page_views.rs"]
#[allow(dead_code, unreachable_pub)]
mod page_views;
#[path = "../../examples/sessionization.rs"]
#[allow(dead_code, unreachable_pub)]
mod sessionization;
#[path = "../../examples/word_count.rs"]
#[allow(dead_code, unreachable_pub)]
mod word_count;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_example() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let counts = word_count::run(&broker.bootstrap(), dir.path()).await?;
    assert_eq!(counts.get("the"), Some(&3));
    assert_eq!(counts.get("dog"), Some(&2));
    assert_eq!(counts.get("fox"), Some(&1));
    assert_eq!(counts.len(), 9, "{counts:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_views_example() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let views = page_views::run(&broker.bootstrap(), dir.path()).await?;
    let expected = [
        (("alice".to_string(), 0), 2),
        (("alice".to_string(), 60_000), 1),
        (("bob".to_string(), 0), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(views, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_payments_example() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let paid = orders_payments::run(&broker.bootstrap(), dir.path()).await?;
    assert_eq!(paid.len(), 1, "{paid:?}");
    let o1 = &paid["o1"];
    assert_eq!(
        (o1.item.as_str(), o1.amount, o1.method.as_str()),
        ("lamp", 30, "card")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_enrichment_example() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let clicks = click_enrichment::run(&broker.bootstrap(), dir.path()).await?;
    let texts: Vec<&str> = clicks.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "Alice clicked /home",
            "unknown clicked /home",
            "Bob clicked /cart"
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessionization_example() -> Result<()> {
    let broker = TestBroker::start().await?;
    let dir = tempfile::tempdir()?;
    let sessions = sessionization::run(&broker.bootstrap(), dir.path()).await?;
    let m = 60_000;
    let expected = [
        (("alice".to_string(), 0, 4 * m), 3),
        (("alice".to_string(), 20 * m, 20 * m), 1),
        (("bob".to_string(), 3 * m, 3 * m), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(sessions, expected);
    Ok(())
}
