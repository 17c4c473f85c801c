//! fjord-streams: stream processing over Fjord (or any Kafka) topics, in the manner of Kafka
//! Streams.
//!
//! - [`dsl`]: [`StreamsBuilder`], [`KStream`], [`KTable`], grouping, windows, joins.
//! - [`processor`]: the processor API underneath ([`Processor`], [`ProcessorContext`],
//!   punctuation).
//! - [`store`]: key-value, window and session stores over fjall, logged to changelog topics.
//! - [`topology`]: the graph the DSL builds, split into sub-topologies and tasks.
//! - [`test_driver`]: [`TopologyTestDriver`], to test a topology record by record.
//! - [`runtime`]: [`KafkaStreams`], which runs a topology against a cluster: tasks per input
//!   partition shared through a consumer group, changelog restore, at-least-once commits.
//!
//! ```
//! use fjord_streams::{Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder};
//! use fjord_streams::test_driver::TopologyTestDriver;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("lines", Consumed::with(Serdes::unit(), Serdes::string()))
//!     .flat_map_values(|_, line: String| {
//!         line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>()
//!     })
//!     .select_key(|_, word| word.clone())
//!     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
//!     .count(Materialized::as_store("counts"))
//!     .to_stream()
//!     .to("word-counts", Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
//!
//! let mut driver = TopologyTestDriver::new(builder.build()?, "word-count")?;
//! let lines = driver.input_topic("lines", Serdes::unit(), Serdes::string());
//! let counts = driver.output_topic("word-counts", Serdes::string(), Serdes::nullable(Serdes::i64()));
//! lines.pipe(&mut driver, &(), &"a b a".to_string(), 0)?;
//! assert_eq!(
//!     counts.read_key_values(&mut driver)?,
//!     vec![("a".into(), Some(1)), ("b".into(), Some(1)), ("a".into(), Some(2))]
//! );
//! # Ok::<(), fjord_streams::Error>(())
//! ```

mod avro;
pub mod dsl;
mod error;
pub mod processor;
pub mod runtime;
pub mod serdes;
pub mod store;
mod task;
pub mod test_driver;
pub mod topology;

pub use avro::AvroSerde;
pub use dsl::{
    Change, Consumed, EmitStrategy, GlobalKTable, Grouped, JoinWindows, Joined, KGroupedStream,
    KGroupedTable, KStream, KTable, Materialized, Produced, SessionWindows, SlidingWindows,
    StreamsBuilder, TimeWindows, Window, Windowed, WindowedSerde,
};
pub use error::{Error, Result, SerdeError};
pub use processor::{Downstream, Lifecycle, Processor, ProcessorContext, PunctuationType, Record};
pub use runtime::{KafkaStreams, State, StreamsConfig, StreamsMetrics};
pub use serdes::{Serde, SerdeRef, Serdes};
pub use task::{DeserializationHandler, TaskId};
pub use test_driver::TopologyTestDriver;
