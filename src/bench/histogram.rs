//! Latency histograms (HdrHistogram): recorded in µs, stored in bench.json
//! in HdrHistogram's V2 deflate form (base64) so that runs from many load
//! generators merge exactly and percentiles come from the merged counts.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// A latency histogram, µs.
pub type Latency = Histogram<u64>;

/// Highest latency recorded exactly, µs (one hour); longer ones saturate.
pub const MAX_US: u64 = 3_600_000_000;

/// A bad serialised histogram.
#[derive(Debug, thiserror::Error)]
#[error("latency histogram: {0}")]
pub struct HistogramError(String);

impl HistogramError {
    /// An error with this text.
    pub(crate) fn from_text(text: &str) -> Self {
        HistogramError(text.to_string())
    }
}

/// An empty histogram: 1 µs to one hour, three significant digits.
pub fn new() -> Latency {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant bounds HdrHistogram accepts")
}

/// Records one latency.
pub fn record(h: &mut Latency, d: std::time::Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// HdrHistogram V2 deflate, base64.
pub fn encode(h: &Latency) -> Result<String, HistogramError> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| HistogramError(format!("{e:?}")))?;
    Ok(STANDARD.encode(buf))
}

/// The inverse of [`encode`].
pub fn decode(text: &str) -> Result<Latency, HistogramError> {
    let raw = STANDARD
        .decode(text.trim())
        .map_err(|e| HistogramError(format!("not base64: {e}")))?;
    Deserializer::new()
        .deserialize(&mut raw.as_slice())
        .map_err(|e| HistogramError(format!("not an HdrHistogram: {e:?}")))
}

/// The latency at quantile `q` (0..=1), ms; 0 for an empty histogram.
pub fn ms_at(h: &Latency, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The slowest latency, ms.
pub fn max_ms(h: &Latency) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    h.max() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_keeps_every_count() {
        let mut h = new();
        for us in [1, 7, 900, 35_000, 1_200_000, MAX_US + 5] {
            h.saturating_record(us);
        }
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 6);
        assert!(decode("not base64!").is_err());
        assert!(decode(&STANDARD.encode(b"HISTFAAA")).is_err());
    }

    proptest! {
        /// Merging is exact: two histograms added equal one histogram that
        /// recorded both sets of values, at every quantile and in count.
        #[test]
        fn merging_equals_recording_everything(
            a in proptest::collection::vec(1u64..10_000_000, 0..300),
            b in proptest::collection::vec(1u64..10_000_000, 0..300),
        ) {
            let (mut ha, mut hb, mut all) = (new(), new(), new());
            for &v in &a { ha.saturating_record(v); all.saturating_record(v); }
            for &v in &b { hb.saturating_record(v); all.saturating_record(v); }
            let mut merged = decode(&encode(&ha).unwrap()).unwrap();
            merged.add(decode(&encode(&hb).unwrap()).unwrap()).unwrap();
            prop_assert_eq!(merged.len(), (a.len() + b.len()) as u64);
            for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
                prop_assert_eq!(ms_at(&merged, q), ms_at(&all, q));
            }
            prop_assert_eq!(max_ms(&merged), max_ms(&all));
        }
    }
}
