//! The memory bench's decay plot: RSS over time after a freed burst (T6 and
//! its siblings), one panel per scenario, one line per allocator, on a
//! log scale so that 2 MiB and 1 GiB both read.
//!
//! A panel's first point is the RSS right after the frees (time 0), the
//! others the samples the scenario took after it; a thin black line marks
//! strata's start + 64 MiB, the target every panel is held to.

use std::path::Path;

use plotters::prelude::*;

use super::{colour, Err, Legend};
use crate::results::ScenarioResult;

const PANEL_W: u32 = 420;
const PANEL_H: u32 = 300;
const COLUMNS: usize = 3;
const TOP: u32 = 64;

/// The most MiB a panel shows, as a power of two.
const MAX_LOG2: f64 = 11.0;

/// Writes one panel per result in `results` (decay scenarios) to `path`,
/// titled `title`.
pub fn decay_svg(path: &Path, results: &[&ScenarioResult], title: &str) -> Result<(), String> {
    draw(path, results, title).map_err(|e| format!("plot {}: {e}", path.display()))
}

/// The (seconds after the frees, column) of each point of `r`'s curves:
/// the RSS after the frees, then every `@<t>s MiB` sample.
fn points(r: &ScenarioResult) -> Vec<(f64, String)> {
    let mut v = vec![(0.0, "after free MiB".to_string())];
    for c in r.spec.cols() {
        let t = c
            .name
            .strip_prefix('@')
            .and_then(|n| n.strip_suffix("s MiB"))
            .and_then(|t| t.parse::<f64>().ok());
        if let Some(t) = t {
            v.push((t, c.name));
        }
    }
    v
}

/// MiB on the panels' log scale (1 MiB and less at the bottom).
fn log2_mib(mib: f64) -> f64 {
    mib.max(1.0).log2().min(MAX_LOG2)
}

fn draw(path: &Path, results: &[&ScenarioResult], title: &str) -> Result<(), Err> {
    // Every allocator that ran anywhere, in order of first appearance, so
    // each keeps one colour across the panels.
    let mut names: Vec<&'static str> = Vec::new();
    for r in results {
        for o in &r.outcomes {
            if !names.contains(&o.alloc) {
                names.push(o.alloc);
            }
        }
    }
    let rows = results.len().div_ceil(COLUMNS).max(1);
    let width = PANEL_W * COLUMNS as u32;
    let root = SVGBackend::new(path, (width, TOP + PANEL_H * rows as u32)).into_drawing_area();
    let legend = Legend {
        left: 10,
        step: 150,
        line: BLACK,
        note: "strata's start + 64 MiB",
    };
    legend.draw_with_title(&root, title, &names)?;
    let (_, below) = root.split_vertically(TOP);
    for (panel, r) in below.split_evenly((rows, COLUMNS)).iter().zip(results) {
        let pts = points(r);
        let end = pts.last().map_or(1.0, |p| p.0).max(1.0);
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("[{}] {}", r.spec.id, r.spec.name),
                ("sans-serif", 14),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..end, 0f64..MAX_LOG2)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_labels(6)
            .y_labels(12)
            .y_label_formatter(&|v| format!("{}", 2f64.powf(v.round())))
            .x_desc("s after the frees")
            .y_desc("RSS MiB")
            .draw()?;
        if let Ok(start) = r.value("strata", "start MiB") {
            let y = log2_mib(start + 64.0);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(0.0, y), (end, y)],
                BLACK.stroke_width(1),
            )))?;
        }
        for o in &r.outcomes {
            let c = colour(names.iter().position(|n| *n == o.alloc).unwrap_or(0));
            let line: Vec<(f64, f64)> = pts
                .iter()
                .filter_map(|(t, col)| Some((*t, log2_mib(r.value(o.alloc, col).ok()?))))
                .collect();
            chart.draw_series(std::iter::once(PathElement::new(
                line.clone(),
                c.stroke_width(2),
            )))?;
            chart.draw_series(line.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::ChildRuns;
    use crate::memory::specs;
    use crate::mode::Mode;

    #[test]
    fn draws_a_panel_per_scenario_with_every_allocator() {
        let results: Vec<ScenarioResult> = specs(Mode::Quick)
            .into_iter()
            .filter(|s| s.id.starts_with("T6"))
            .map(|spec| {
                let n = spec.cols().len();
                let run = |mib: f64| vec![Ok((0..n).map(|i| mib + i as f64).collect())];
                ScenarioResult {
                    spec,
                    outcomes: vec![
                        ChildRuns {
                            alloc: "strata",
                            runs: run(2.0),
                        },
                        ChildRuns {
                            alloc: "jemalloc",
                            runs: run(150.0),
                        },
                    ],
                }
            })
            .collect();
        assert_eq!(results.len(), 6);
        let refs: Vec<&ScenarioResult> = results.iter().collect();
        assert_eq!(
            points(refs[0]).len(),
            1 + 2 * 2,
            "after free, then 2 s of samples"
        );
        crate::plot::tests::assert_draws(
            |path| decay_svg(path, &refs, "decay test"),
            &[
                "decay test",
                "[T6f] decay 2 KiB blocks, no calls",
                "jemalloc",
                "start + 64 MiB",
            ],
        );
    }
}
