//! Owns the geometry of sparklines: a series of optional values to SVG polyline points.
//! Gaps (no data in a window) break the line rather than drawing it to zero.

/// Polyline segments (`"x,y x,y ..."`) of `values` in a `width` × `height` box, with
/// `range` mapped bottom to top. Each run of present values is one segment.
pub fn segments(values: &[Option<f64>], width: f64, height: f64, range: (f64, f64)) -> Vec<String> {
    let (low, high) = range;
    let span = if high > low { high - low } else { 1.0 };
    let step = if values.len() > 1 {
        width / (values.len() - 1) as f64
    } else {
        0.0
    };
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match value.filter(|v| v.is_finite()) {
            Some(v) => {
                let y = height - ((v - low) / span).clamp(0.0, 1.0) * height;
                current.push(format!("{:.1},{:.1}", i as f64 * step, y));
            }
            None if !current.is_empty() => out.push(std::mem::take(&mut current).join(" ")),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

/// The y of `value` in the same box (for the target line).
pub fn y_of(value: f64, height: f64, range: (f64, f64)) -> f64 {
    let span = if range.1 > range.0 {
        range.1 - range.0
    } else {
        1.0
    };
    height - ((value - range.0) / span).clamp(0.0, 1.0) * height
}

/// A range that shows the series' movement: rates between 0 and 1, zoomed to the data
/// (with the target in view) but never flatter than 10 points.
pub fn rate_range(values: &[Option<f64>], target: Option<f64>) -> (f64, f64) {
    let present = values.iter().flatten().copied().chain(target);
    let (min, max) = present.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if min > max {
        return (0.0, 1.0);
    }
    let pad = ((max - min) * 0.1).max(0.05);
    ((min - pad).max(0.0), (max + pad).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_span_the_box_and_gaps_break_the_line() {
        let values = [Some(0.0), Some(1.0), None, Some(0.5), Some(0.5)];
        let segs = segments(&values, 100.0, 20.0, (0.0, 1.0));
        assert_eq!(segs, vec!["0.0,20.0 25.0,0.0", "75.0,10.0 100.0,10.0"]);
        assert!(segments(&[None, None], 100.0, 20.0, (0.0, 1.0)).is_empty());
        assert_eq!(y_of(0.8, 20.0, (0.0, 1.0)), 4.0);
    }

    #[test]
    fn ranges_zoom_on_the_data_and_keep_the_target_in_view() {
        let (lo, hi) = rate_range(&[Some(0.82), Some(0.86)], Some(0.8));
        assert!(lo <= 0.8 && (0.86..=1.0).contains(&hi), "{lo} {hi}");
        assert_eq!(rate_range(&[None], None), (0.0, 1.0));
        let (lo, hi) = rate_range(&[Some(0.99), Some(1.0)], None);
        assert!(hi <= 1.0 && lo < 0.99);
    }
}
