//! The main job's plot: per workload, each allocator's time relative to the
//! fastest one on that workload, as grouped horizontal bars (an SVG drawn
//! with plotters' SVG backend, which needs no font library: text goes into
//! the file as `<text>` elements and the viewer renders it).
//!
//! The scale is linear and capped at [`CAP`]: a bar that reaches the cap is
//! cut there and labelled with its real ratio. A red line marks the time
//! target most rows are held to (from the results' table of targets,
//! [`crate::targets::compare`]). One plot shows one interface's rows.
//!
//! The memory bench's plot of RSS over time after a freed burst is in
//! `plot/decay.rs`, with the same colours.

mod decay;

pub use decay::decay_svg;

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::api::Api;
use crate::results::RowResult;
use crate::targets::{self, Against, TIME};

/// Ratios above this are drawn cut at it.
pub const CAP: f64 = 4.0;

/// Pixels per bar, and the gap after each workload's group.
const BAR: u32 = 9;
const GAP: u32 = 10;
const WIDTH: u32 = 1100;
const LEFT: u32 = 260;
const TOP: u32 = 70;
const BOTTOM: u32 = 40;

/// Fill colour of the `i`-th allocator (strata first).
fn colour(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 6] = [
        RGBColor(214, 39, 40),
        RGBColor(127, 127, 127),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
    ];
    COLOURS[i % COLOURS.len()]
}

/// Each allocator's median over the row's best median (NaN if missing).
pub fn relative_times(r: &RowResult) -> Vec<(&'static str, f64)> {
    let medians: Vec<f64> = r
        .allocs
        .iter()
        .map(|a| a.stats(r.row.metric).median)
        .collect();
    let best = medians.iter().copied().fold(f64::INFINITY, f64::min);
    r.allocs
        .iter()
        .zip(medians)
        .map(|(a, m)| (a.alloc, m / best))
        .collect()
}

type Err = Box<dyn std::error::Error>;

/// Where a plot's legend goes and what its last entry, a line, means.
struct Legend<'a> {
    /// Pixels from the left of the first entry.
    left: i32,
    /// Pixels from one allocator's entry to the next.
    step: i32,
    /// The colour of the line the last entry explains.
    line: RGBColor,
    /// What the line marks.
    note: &'a str,
}

impl Legend<'_> {
    /// Fills `root` white and draws `title` above this legend: a box of
    /// each allocator's colour (the `i`-th of `names` has `colour(i)`) with
    /// its name, then the line with its note.
    fn draw_with_title(
        &self,
        root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
        title: &str,
        names: &[&str],
    ) -> Result<(), Err> {
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            title.to_string(),
            (10, 12),
            ("sans-serif", 18).into_font(),
        ))?;
        for (i, name) in names.iter().enumerate() {
            let x = self.left + self.step * i as i32;
            root.draw(&Rectangle::new([(x, 40), (x + 14, 52)], colour(i).filled()))?;
            root.draw(&Text::new(
                name.to_string(),
                (x + 20, 40),
                ("sans-serif", 14),
            ))?;
        }
        let x = self.left + self.step * names.len() as i32;
        root.draw(&PathElement::new(vec![(x, 46), (x + 14, 46)], self.line))?;
        root.draw(&Text::new(
            self.note.to_string(),
            (x + 20, 40),
            ("sans-serif", 14),
        ))?;
        Ok(())
    }
}

/// Writes the grouped bar chart of `results` (rows run through one
/// interface) to `path`, titled `title`.
pub fn compare_svg(path: &Path, results: &[RowResult], title: &str) -> Result<(), String> {
    draw(path, results, title).map_err(|e| format!("plot {}: {e}", path.display()))
}

fn draw(path: &Path, results: &[RowResult], title: &str) -> Result<(), Err> {
    let names: Vec<&str> = results
        .first()
        .map_or(Vec::new(), |r| r.allocs.iter().map(|a| a.alloc).collect());
    let per_group = names.len() as u32 * BAR + GAP;
    let height = TOP + BOTTOM + per_group * results.len() as u32;
    // Rows are counted in bar slots, top to bottom.
    let slots = (results.len() * (names.len() + 1)) as f64;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    let table = targets::compare(results.first().map_or(Api::Sized, |r| r.api));
    let limit = targets::limit_of(table, TIME, Against::BestPeer).unwrap_or(f64::NAN);
    let legend = Legend {
        left: LEFT as i32,
        step: 120,
        line: RED,
        note: &format!("{limit}x: the target on most rows"),
    };
    legend.draw_with_title(&root, title, &names)?;
    let mut chart = ChartBuilder::on(&root)
        .margin_top(TOP)
        .margin_right(30)
        .margin_left(LEFT)
        .x_label_area_size(BOTTOM - 10)
        .build_cartesian_2d(0f64..CAP, slots..0f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(0)
        .x_labels(9)
        .x_label_formatter(&|v| format!("{v:.1}x"))
        .x_desc("time / fastest allocator on the workload (capped at 4x)")
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(limit, 0.0), (limit, slots)],
        RED.stroke_width(1),
    )))?;
    let label = ("sans-serif", 11).into_font();
    for (g, r) in results.iter().enumerate() {
        let top = (g * (names.len() + 1)) as f64;
        let (_, y) = chart.backend_coord(&(0.0, top + names.len() as f64 / 2.0));
        let name = format!("[{}] {}", r.row.id, r.row.name);
        let style = ("sans-serif", 13)
            .into_text_style(&root)
            .pos(Pos::new(HPos::Right, VPos::Center));
        root.draw(&Text::new(name, (LEFT as i32 - 8, y), style))?;
        for (i, (_, ratio)) in relative_times(r).into_iter().enumerate() {
            let y0 = top + i as f64;
            let end = if ratio.is_finite() {
                ratio.min(CAP)
            } else {
                0.0
            };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0 + 0.1), (end, y0 + 0.9)],
                colour(i).filled(),
            )))?;
            // A cut bar carries its real ratio inside its end, in white.
            let (text, x, pos, ink) = match ratio {
                r if !r.is_finite() => ("failed".to_string(), 0.02, HPos::Left, BLACK),
                r if r > CAP => (format!("{r:.1}x >"), CAP - 0.02, HPos::Right, WHITE),
                r => (format!("{r:.2}x"), end + 0.02, HPos::Left, BLACK),
            };
            let (px, py) = chart.backend_coord(&(x, y0 + 0.5));
            let style = label.clone().color(&ink).pos(Pos::new(pos, VPos::Center));
            root.draw(&Text::new(text, (px, py), style))?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::Mode;
    use crate::results::fake_result;
    use crate::suite::suite;

    #[test]
    fn writes_an_svg_with_labels() {
        let ns = [
            ("strata", 10),
            ("glibc", 52),
            ("mimalloc", 8),
            ("jemalloc", 16),
        ];
        let results: Vec<RowResult> = suite(Mode::Smoke)
            .into_iter()
            .take(3)
            .map(|row| fake_result(row, &ns, &[]))
            .collect();
        let rel = relative_times(&results[0]);
        assert_eq!(rel[0], ("strata", 10.0 / 8.0));
        assert_draws(
            |path| compare_svg(path, &results, "test plot"),
            &[
                "test plot",
                "[1] small pairs",
                "1.25x",
                "6.5x &gt;",
                "jemalloc",
            ],
        );
    }

    /// Draws a plot with `draw` into a file of its own and checks that the SVG
    /// holds every one of `texts`.
    pub(crate) fn assert_draws(draw: impl FnOnce(&Path) -> Result<(), String>, texts: &[&str]) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("strata-plot-{}-{n}.svg", std::process::id()));
        draw(&path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        for text in texts {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
