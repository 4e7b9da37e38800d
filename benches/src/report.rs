//! Everything both benches print and write: fixed-width tables ([`Table`]),
//! CSV lines, number formats and where output files go; the main job's row
//! tables ([`rows`]), the memory scenarios' tables ([`scenarios`]) and the
//! SUMMARY of each against its targets ([`summary`]).

use std::fmt::{Display, Write as _};
use std::path::{Path, PathBuf};

use crate::mode::Mode;

pub mod rows;
pub mod scenarios;
pub mod summary;

/// How one column of a [`Table`] is laid out.
#[derive(Clone, Copy, Debug)]
struct Column {
    width: usize,
    right: bool,
    /// Spaces after the column before it.
    gap: usize,
}

/// A fixed-width text table: lines indented by two spaces, each cell padded
/// to its column (a wider cell pushes the rest of its line right), and free
/// lines of text between them.
#[derive(Debug)]
pub struct Table {
    cols: Vec<Column>,
    out: String,
}

impl Table {
    /// An empty table laid out as `spec` says, in the terms of a format
    /// string: `<w` a column left-aligned in `w` characters, `>w` one
    /// right-aligned (`w` = 0: not padded), separated by as many spaces as
    /// stand between them, e.g. `"<10 >19 >13"` or `"<3 >8  <0"`.
    pub fn new(spec: &str) -> Table {
        let mut cols = Vec::new();
        let mut gap = 0;
        for token in spec.split(' ') {
            gap += 1;
            let Some(width) = token.get(1..) else {
                continue;
            };
            let right = token.starts_with('>');
            assert!(right || token.starts_with('<'), "bad column {token:?}");
            let width = width.parse().expect("a column width");
            cols.push(Column { width, right, gap });
            gap = 0;
        }
        Table {
            cols,
            out: String::new(),
        }
    }

    fn cells(&mut self, cells: &[&dyn Display]) {
        assert!(cells.len() <= self.cols.len(), "more cells than columns");
        self.out.push_str("  ");
        for (i, (cell, c)) in cells.iter().zip(&self.cols).enumerate() {
            if i > 0 {
                self.out.extend(std::iter::repeat_n(' ', c.gap));
            }
            let w = c.width;
            let _ = if c.right {
                write!(self.out, "{cell:>w$}")
            } else {
                write!(self.out, "{cell:<w$}")
            };
        }
    }

    /// A line of cells, one per column from the first (fewer is fine).
    pub fn row(&mut self, cells: &[&dyn Display]) {
        self.cells(cells);
        self.out.push('\n');
    }

    /// A line of cells, then `rest` unpadded, after the gap of the column
    /// it stands in.
    pub fn row_then(&mut self, cells: &[&dyn Display], rest: &str) {
        self.cells(cells);
        let gap = self.cols.get(cells.len()).map_or(1, |c| c.gap);
        self.out.extend(std::iter::repeat_n(' ', gap));
        self.out.push_str(rest);
        self.out.push('\n');
    }

    /// A line of text as it is.
    pub fn text(&mut self, line: impl Display) {
        let _ = writeln!(self.out, "{line}");
    }

    /// The table's text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Formats nanoseconds with precision that suits the magnitude.
pub fn fmt_ns(v: f64) -> String {
    if !v.is_finite() {
        "-".to_string()
    } else if v < 100.0 {
        format!("{v:.2}")
    } else if v < 10_000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// Formats a signed KiB amount as "+1.5 MiB".
pub fn fmt_kib(kib: i64) -> String {
    let sign = if kib < 0 { "-" } else { "+" };
    let k = kib.unsigned_abs() as f64;
    if k >= 1024.0 * 1024.0 {
        format!("{sign}{:.2} GiB", k / (1024.0 * 1024.0))
    } else if k >= 1024.0 {
        format!("{sign}{:.1} MiB", k / 1024.0)
    } else {
        format!("{sign}{k:.0} KiB")
    }
}

/// KiB as "12.3 MiB".
pub fn fmt_mib(kib: f64) -> String {
    if kib.is_finite() {
        format!("{:.1} MiB", kib / 1024.0)
    } else {
        "-".into()
    }
}

/// Formats a ratio as "1.23x" ("-" when not finite).
pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "-".to_string()
    }
}

/// `v` with `prec` decimals; "n/a" for NaN.
pub fn fmt_num(v: f64, prec: usize) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{v:.prec$}")
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a newline.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// One CSV line of `fields`, with its newline.
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let fields: Vec<String> = fields.iter().map(|f| csv_field(f.as_ref())).collect();
    fields.join(",") + "\n"
}

/// `<target>/strata-bench`, where bench results go; `<target>` is found from
/// the running executable's path (`<target>/release/deps/<bench>-*`), else
/// `../target` next to this crate.
pub fn output_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|p| p.file_name().is_some_and(|n| n == "deps"))
                .and_then(|deps| deps.parent()?.parent().map(Path::to_path_buf))
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("strata-bench")
}

/// `<output_dir>/<stem>.<ext>`, or `<stem>-smoke.<ext>` for smoke runs so
/// that they never replace real results.
pub fn output_path(mode: Mode, stem: &str, ext: &str) -> PathBuf {
    let file = match mode {
        Mode::Smoke => format!("{stem}-smoke.{ext}"),
        Mode::Full | Mode::Quick => format!("{stem}.{ext}"),
    };
    output_dir().join(file)
}

/// Draws a plot with `draw` into `<output_dir>/<name>.svg` (see
/// [`output_path`]) and says where on stdout; with `docs`, also copies it to
/// `docs/plots/<name>.svg`. As bench `tool`, says what failed on stderr.
pub fn save_plot(
    tool: &str,
    mode: Mode,
    name: &str,
    docs: bool,
    draw: impl FnOnce(&Path) -> Result<(), String>,
) {
    let svg = output_path(mode, name, "svg");
    let written = std::fs::create_dir_all(output_dir())
        .map_err(|e| e.to_string())
        .and_then(|()| draw(&svg));
    if let Err(e) = written {
        eprintln!("{tool}: {e}");
        return;
    }
    println!("plot: {}", svg.display());
    if docs {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/plots");
        let to = dir.join(format!("{name}.svg"));
        match std::fs::create_dir_all(&dir).and_then(|()| std::fs::copy(&svg, &to)) {
            Ok(_) => println!("plot copied to {}", to.display()),
            Err(e) => eprintln!("{tool}: could not copy the plot to {}: {e}", dir.display()),
        }
    }
}

/// Writes the CSV `text` to `path`, creating its directory, and says where
/// on stdout, or, as bench `tool`, why not on stderr.
pub fn save_csv(tool: &str, path: &Path, text: &str) {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, text));
    match written {
        Ok(()) => println!("CSV: {}", path.display()),
        Err(e) => eprintln!("{tool}: could not write {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests;
