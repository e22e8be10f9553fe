//! Charts as inline SVG, drawn with plotters' SVG backend. Labels are pss's
//! own text; nothing from traces is drawn into a chart.

use plotters::prelude::*;

use super::model::Report;

const W: u32 = 640;
const H: u32 = 260;
const BAR: RGBColor = RGBColor(66, 133, 244);
const ERR: RGBColor = RGBColor(234, 67, 53);
const MEM: RGBColor = RGBColor(52, 168, 83);

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        1.0
    } else {
        v * 1.1
    }
}

/// Latency histogram with p50, p95 and p99 marked.
pub fn latency_histogram(r: &Report) -> Option<String> {
    let bins = &r.charts.latency_bins;
    if bins.is_empty() {
        return None;
    }
    let mut svg = String::new();
    let res: DrawResult = (|| {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        // The overflow bin (above p99) is drawn one bin wide past the last
        // regular bin, so a long tail does not squash the histogram.
        let regular: Vec<(f64, f64, u64)> =
            bins.iter().copied().filter(|b| b.0 < b.1 && b.1 <= bins[0].0 + (bins[0].1 - bins[0].0) * 40.5).collect();
        let width = bins[0].1 - bins[0].0;
        let overflow = if bins.len() > regular.len() { bins.last().map(|b| b.2) } else { None };
        let bins = &regular;
        let x0 = bins.first().map(|b| b.0).unwrap_or(0.0);
        let x1 = bins.last().map(|b| b.1).unwrap_or(1.0).max(x0 + 1e-12)
            + if overflow.is_some() { 1.5 * width } else { 0.0 };
        let ymax = nice_max(bins.iter().map(|b| b.2).chain(overflow).max().unwrap_or(1) as f64);
        let caption = match overflow {
            Some(n) => format!("Latency distribution (dark bar: {n} traces above p99)"),
            None => "Latency distribution".to_string(),
        };
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption(caption, ("sans-serif", 15))
            .x_label_area_size(34)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, 0.0..ymax)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(245, 245, 245))
            .bold_line_style(RGBColor(225, 225, 225))
            .x_desc("duration (s)")
            .y_desc("traces")
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&|v| format!("{v:.4}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        chart.draw_series(
            bins.iter().map(|&(a, b, c)| Rectangle::new([(a, 0.0), (b, c as f64)], BAR.mix(0.8).filled())),
        )?;
        for (label, v, color) in
            [("p50", r.latency.p50, BLACK), ("p95", r.latency.p95, ERR), ("p99", r.latency.p99, RGBColor(150, 0, 150))]
        {
            if v >= x0 && v <= x1 {
                chart
                    .draw_series(LineSeries::new(vec![(v, 0.0), (v, ymax)], color.stroke_width(2)))?
                    .label(format!("{label} = {v:.4}s"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            }
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    })();
    res.ok().map(|_| svg)
}

/// Errors per time bucket.
pub fn error_timeline(r: &Report) -> Option<String> {
    let tl = &r.charts.error_timeline;
    if tl.len() < 2 {
        return None;
    }
    let mut svg = String::new();
    let t0 = tl[0].0;
    let step = tl[1].0 - tl[0].0;
    let (scale, unit) = axis_unit(r, step * tl.len() as f64);
    let res: DrawResult = (|| {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let x1 = step * tl.len() as f64 / scale;
        let ymax = nice_max(tl.iter().map(|b| b.2).max().unwrap_or(0) as f64);
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption("Errors over time", ("sans-serif", 15))
            .x_label_area_size(34)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..x1, 0.0..ymax)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(245, 245, 245))
            .bold_line_style(RGBColor(225, 225, 225))
            .x_desc(unit.as_str())
            .y_desc("errors")
            .x_labels(6)
            .y_labels(5)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        chart.draw_series(tl.iter().map(|&(x, _, e)| {
            let a = (x - t0) / scale;
            Rectangle::new([(a, 0.0), (a + step / scale, e as f64)], ERR.mix(0.85).filled())
        }))?;
        root.present()?;
        Ok(())
    })();
    res.ok().map(|_| svg)
}

/// Memory (min–max band per bucket) over time.
pub fn memory_over_time(r: &Report) -> Option<String> {
    let m = &r.charts.memory;
    if m.len() < 2 {
        return None;
    }
    let t0 = r.charts.error_timeline.first().map(|b| b.0).unwrap_or(0.0);
    let span = r.charts.error_timeline.last().map(|b| b.0).unwrap_or(1.0) - t0;
    let (scale, unit) = axis_unit(r, span);
    let lo = m.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = m.iter().map(|p| p.2).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.01).max(1e-9);
    let mut svg = String::new();
    let res: DrawResult = (|| {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let x1 = m.last().map(|p| (p.0 - t0) / scale).unwrap_or(1.0).max(1e-9);
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption("Memory over time (band: min–max per bucket)", ("sans-serif", 15))
            .x_label_area_size(34)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x1, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(245, 245, 245))
            .bold_line_style(RGBColor(225, 225, 225))
            .x_desc(unit.as_str())
            .y_desc("memory")
            .x_labels(6)
            .y_labels(5)
            .y_label_formatter(&|v| human(*v))
            .draw()?;
        let mut band: Vec<(f64, f64)> = m.iter().map(|p| ((p.0 - t0) / scale, p.2)).collect();
        band.extend(m.iter().rev().map(|p| ((p.0 - t0) / scale, p.1)));
        chart.draw_series(std::iter::once(Polygon::new(band, MEM.mix(0.3).filled())))?;
        chart.draw_series(LineSeries::new(m.iter().map(|p| ((p.0 - t0) / scale, p.2)), MEM.stroke_width(2)))?;
        root.present()?;
        Ok(())
    })();
    res.ok().map(|_| svg)
}

fn axis_unit(r: &Report, span: f64) -> (f64, String) {
    if !r.charts.timeline_is_time {
        return (1.0, "trace number".into());
    }
    if span > 2.0 * 86400.0 {
        (86400.0, "days since first trace".into())
    } else if span > 2.0 * 3600.0 {
        (3600.0, "hours since first trace".into())
    } else if span > 120.0 {
        (60.0, "minutes since first trace".into())
    } else {
        (1.0, "seconds since first trace".into())
    }
}

/// 1234567 → "1.2M".
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}
