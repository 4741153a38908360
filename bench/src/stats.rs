//! Medians and spreads of repeated measurements.

/// Order statistics of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p10: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for an empty sample. Percentiles interpolate linearly between order statistics.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Summary {
            n: v.len(),
            min: v[0],
            p10: percentile(&v, 0.10),
            median: percentile(&v, 0.50),
            p90: percentile(&v, 0.90),
            max: v[v.len() - 1],
        })
    }

    /// `median (min–max)` with `digits` decimals, e.g. `3.1 (2.8–4.0)`.
    pub fn med_range(&self, digits: usize) -> String {
        format!(
            "{} ({}–{})",
            fmt(self.median, digits),
            fmt(self.min, digits),
            fmt(self.max, digits)
        )
    }
}

/// `p` in 0..=1 of sorted `v`.
fn percentile(v: &[f64], p: f64) -> f64 {
    let pos = p * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// A number with `digits` decimals.
pub fn fmt(x: f64, digits: usize) -> String {
    format!("{x:.digits$}")
}

/// The median of `values` (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    Summary::of(values).map_or(f64::NAN, |s| s.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistics() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.n, s.min, s.median, s.max), (5, 1.0, 3.0, 5.0));
        assert!((s.p10 - 1.4).abs() < 1e-9 && (s.p90 - 4.6).abs() < 1e-9);
        assert_eq!(Summary::of(&[2.0]).unwrap().p90, 2.0);
        assert!(Summary::of(&[]).is_none());
        assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), 2.5);
        assert_eq!(s.med_range(1), "3.0 (1.0–5.0)");
    }
}
