//! Line charts with plotters, as PNG or SVG (picked by the file extension).
//!
//! [`plot_panels`] draws one or more side-by-side panels under a common
//! title; [`plot_lines`] is the one-panel case and [`plot_quality_vs_budget`]
//! the two-panel eval chart. Text is drawn with the embedded DejaVu Sans
//! (see `assets/fonts/DejaVuSans-LICENSE.txt`), so PNGs carry their labels
//! without relying on system fonts. Files are written atomically (temporary
//! file in the same directory, then rename) and replace any existing file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::report::EvalReport;
use crate::profile::io::{commit_temp, temp_sibling, write_atomic, ProfileError};

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Font family name used for all text.
const FAMILY: &str = "sans-serif";

/// Pixel size of one panel.
const PANEL_W: u32 = 640;
const PANEL_H: u32 = 480;
/// Extra height for the overall title.
const TITLE_H: u32 = 40;

/// Line colours, cycled through by series index.
const COLORS: [RGBColor; 8] = [
    RGBColor(33, 102, 172),
    RGBColor(214, 96, 39),
    RGBColor(44, 150, 72),
    RGBColor(190, 40, 60),
    RGBColor(120, 82, 170),
    RGBColor(140, 100, 60),
    RGBColor(210, 90, 170),
    RGBColor(90, 90, 90),
];

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("cannot plot to {}: unsupported format {ext:?}; use a .png or .svg file name", path.display())]
    UnsupportedFormat { path: PathBuf, ext: String },
    #[error("nothing to plot: {0}")]
    NoData(String),
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error("font could not be loaded: {0}")]
    Font(String),
    #[error(transparent)]
    Write(#[from] ProfileError),
}

/// Where a panel's legend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegendCorner {
    UpperLeft,
    #[default]
    UpperRight,
    LowerLeft,
    LowerRight,
}

/// One chart: axes labels and `(name, points)` series.
#[derive(Debug, Clone, Copy)]
pub struct Panel<'a> {
    /// Caption above the panel (may be empty).
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [(String, Vec<(f64, f64)>)],
    pub legend: LegendCorner,
}

/// Output format, from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Svg,
}

fn format_of(path: &Path) -> Result<Format, PlotError> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" => Ok(Format::Png),
        "svg" => Ok(Format::Svg),
        _ => Err(PlotError::UnsupportedFormat { path: path.to_path_buf(), ext }),
    }
}

/// Adds the point `(x, y)` to the series called `name`, starting that
/// series if it is new (series keep the order they first appeared in).
pub fn push_point(series: &mut Vec<(String, Vec<(f64, f64)>)>, name: String, x: f64, y: f64) {
    match series.iter_mut().find(|(n, _)| *n == name) {
        Some((_, pts)) => pts.push((x, y)),
        None => series.push((name, vec![(x, y)])),
    }
}

/// A single line chart: one line (with point markers) per series.
pub fn plot_lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    path: &Path,
) -> Result<(), PlotError> {
    let panel = Panel { title: "", x_label, y_label, series, legend: LegendCorner::UpperRight };
    plot_panels(title, &[panel], path)
}

/// Quality against KV budget: KL to the unpruned model (left) and top-1
/// agreement with it (right), one line per method.
pub fn plot_quality_vs_budget(report: &EvalReport, path: &Path) -> Result<(), PlotError> {
    let kl = report.series(|r| Some(r.kl_to_full));
    let agreement = report.series(|r| Some(r.top1_agreement));
    let panels = [
        Panel {
            title: "KL divergence to full cache",
            x_label: "KV budget (fraction kept)",
            y_label: "KL to full",
            series: &kl,
            legend: LegendCorner::UpperRight,
        },
        Panel {
            title: "Top-1 agreement with full cache",
            x_label: "KV budget (fraction kept)",
            y_label: "top-1 agreement",
            series: &agreement,
            legend: LegendCorner::LowerRight,
        },
    ];
    plot_panels("Quality vs KV budget", &panels, path)
}

/// Panels side by side under a common title, written to `path` (.png/.svg).
pub fn plot_panels(title: &str, panels: &[Panel<'_>], path: &Path) -> Result<(), PlotError> {
    let format = format_of(path)?;
    if panels.is_empty() {
        return Err(PlotError::NoData("no panels".into()));
    }
    // Check the data before touching the file system.
    for p in panels {
        data_bounds(p.series)?;
    }
    ensure_font()?;
    let size = canvas_size(panels.len());
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                render(&root, title, panels)?;
                root.present().map_err(draw_err)?;
            }
            write_atomic(path, svg.as_bytes(), true)?;
        }
        Format::Png => {
            // The bitmap backend picks its encoder from the extension, so
            // the staging file keeps ".png".
            let tmp = temp_sibling(path, ".png")?;
            let drawn = (|| {
                let root = BitMapBackend::new(&tmp, size).into_drawing_area();
                render(&root, title, panels)?;
                root.present().map_err(draw_err)
            })();
            if let Err(e) = drawn {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            commit_temp(&tmp, path, true)?;
        }
    }
    Ok(())
}

fn canvas_size(n_panels: usize) -> (u32, u32) {
    (PANEL_W * n_panels as u32, PANEL_H + TITLE_H)
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Register the embedded font once per process.
fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS)
                .map_err(|_| "embedded DejaVu Sans is not a valid font".to_string())
        })
        .clone()
        .map_err(PlotError::Font)
}

/// Draw everything onto `root`; backend-independent.
fn render<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel<'_>],
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(draw_err)?;
    let body = if title.is_empty() {
        root.clone()
    } else {
        root.titled(title, (FAMILY, 26).into_font().color(&BLACK)).map_err(draw_err)?
    };
    for (panel, area) in panels.iter().zip(body.split_evenly((1, panels.len()))) {
        draw_panel(&area, panel)?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel<'_>) -> Result<(), PlotError> {
    let ((x0, x1), (y0, y1)) = data_bounds(panel.series)?;
    let mut builder = ChartBuilder::on(area);
    builder.margin(14).x_label_area_size(48).y_label_area_size(72);
    if !panel.title.is_empty() {
        builder.caption(panel.title, (FAMILY, 18));
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(panel.x_label)
        .y_desc(panel.y_label)
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&|v| tick_label(*v))
        .y_label_formatter(&|v| tick_label(*v))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 15))
        .max_light_lines(1)
        .light_line_style(RGBColor(242, 242, 242))
        .draw()
        .map_err(draw_err)?;

    for (i, (name, points)) in panel.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts = clean_points(points);
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(draw_err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(draw_err)?;
    }
    let position = match panel.legend {
        LegendCorner::UpperLeft => SeriesLabelPosition::UpperLeft,
        LegendCorner::UpperRight => SeriesLabelPosition::UpperRight,
        LegendCorner::LowerLeft => SeriesLabelPosition::LowerLeft,
        LegendCorner::LowerRight => SeriesLabelPosition::LowerRight,
    };
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// Axis tick text: up to four decimals without trailing zeros ("0.25",
/// "4000"), scientific notation for very small or very large magnitudes.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Finite points sorted by x, so lines run left to right.
fn clean_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// `(x_min, x_max)` and `(y_min, y_max)` of a panel.
type Bounds = ((f64, f64), (f64, f64));

/// Padded axis ranges covering every finite point of every series.
fn data_bounds(series: &[(String, Vec<(f64, f64)>)]) -> Result<Bounds, PlotError> {
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| clean_points(p)).collect();
    if pts.is_empty() {
        return Err(PlotError::NoData(if series.is_empty() {
            "no series".into()
        } else {
            "no finite points in any series".into()
        }));
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in &pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    Ok((pad(x0, x1, 0.04), pad_nonnegative(y0, y1, 0.08)))
}

fn pad(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 0.0 {
        (lo - span * frac, hi + span * frac)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    }
}

/// Like [`pad`], but an axis whose data is all non-negative does not dip
/// below zero.
fn pad_nonnegative(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let (a, b) = pad(lo, hi, frac);
    if lo >= 0.0 {
        (a.max(0.0), b)
    } else {
        (a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::report::MethodResult;
    use std::fs;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("depthkv-plot-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn files(&self) -> Vec<String> {
            let mut v: Vec<String> =
                fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn report() -> EvalReport {
        let mut results = Vec::new();
        for (method, scale) in [("uniform", 1.0), ("depthkv", 0.6)] {
            for budget in [0.1, 0.25, 0.5, 1.0] {
                results.push(MethodResult {
                    method: method.into(),
                    budget,
                    kl_to_full: scale * (1.0 - budget) * 0.4,
                    top1_agreement: 1.0 - scale * (1.0 - budget) * 0.3,
                    nll_reference: None,
                    accuracy: None,
                    task_score: None,
                    kv_bytes: 0,
                    n_prompts: 8,
                });
            }
        }
        EvalReport { results, ..Default::default() }
    }

    fn series() -> Vec<(String, Vec<(f64, f64)>)> {
        vec![
            ("prefill".into(), vec![(4000.0, 30.0), (1000.0, 80.0), (2000.0, 55.0)]),
            ("decode".into(), vec![(1000.0, 40.0), (4000.0, f64::NAN)]),
        ]
    }

    /// Render into an RGB buffer with the same code path as the files.
    fn render_rgb(title: &str, panels: &[Panel<'_>]) -> (Vec<u8>, (u32, u32)) {
        ensure_font().unwrap();
        let size = canvas_size(panels.len());
        let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
            render(&root, title, panels).unwrap();
            root.present().unwrap();
        }
        (buf, size)
    }

    fn non_white_in_rows(buf: &[u8], width: u32, rows: std::ops::Range<u32>) -> usize {
        rows.flat_map(|y| (0..width).map(move |x| ((y * width + x) * 3) as usize))
            .filter(|&i| buf[i..i + 3] != [255, 255, 255])
            .count()
    }

    #[test]
    fn title_text_is_rasterized() {
        let s = series();
        let panel =
            Panel { title: "", x_label: "context", y_label: "tokens/s", series: &s, legend: LegendCorner::UpperRight };
        let (with, size) = render_rgb("Decode speed", &[panel]);
        let (without, _) = render_rgb("", &[panel]);
        // Glyph pixels appear in the title band only when there is a title.
        assert!(non_white_in_rows(&with, size.0, 0..TITLE_H - 8) > 100);
        assert_eq!(non_white_in_rows(&without, size.0, 0..8), 0);
        assert_ne!(with, without);
    }

    #[test]
    fn series_colors_are_drawn() {
        let s = series();
        let panel = Panel { title: "panel", x_label: "x", y_label: "y", series: &s, legend: LegendCorner::LowerLeft };
        let (buf, _) = render_rgb("t", &[panel]);
        let count = |c: RGBColor| buf.chunks(3).filter(|p| *p == [c.0, c.1, c.2]).count();
        assert!(count(COLORS[0]) > 200, "first series line");
        assert!(count(COLORS[1]) > 10, "second series marker and legend");
        assert_eq!(count(COLORS[2]), 0);
    }

    #[test]
    fn svg_contains_titles_labels_and_legend() {
        let dir = TempDir::new("svg");
        let path = dir.0.join("q.svg");
        plot_quality_vs_budget(&report(), &path).unwrap();
        let svg = fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "Quality vs KV budget",
            "KL divergence to full cache",
            "Top-1 agreement with full cache",
            "KV budget (fraction kept)",
            "uniform",
            "depthkv",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        assert!(svg.contains("width=\"1280\""), "two panels wide");
        assert_eq!(dir.files(), vec!["q.svg"]);
    }

    #[test]
    fn png_file_is_written_atomically_with_expected_size() {
        let dir = TempDir::new("png");
        let path = dir.0.join("speed.PNG");
        fs::write(&path, b"old").unwrap();
        plot_lines("Decode speed", "context", "tokens/s", &series(), &path).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (PANEL_W, PANEL_H + TITLE_H));
        assert_eq!(dir.files(), vec!["speed.PNG"]);

        let two = dir.0.join("q.png");
        plot_quality_vs_budget(&report(), &two).unwrap();
        let bytes = fs::read(&two).unwrap();
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 2 * PANEL_W);
    }

    #[test]
    fn rejects_other_extensions_and_empty_data() {
        let dir = TempDir::new("bad");
        for name in ["plot.jpg", "plot", "plot.svg.txt"] {
            let err = plot_lines("t", "x", "y", &series(), &dir.0.join(name)).unwrap_err();
            assert!(matches!(err, PlotError::UnsupportedFormat { .. }), "{name}");
            assert!(err.to_string().contains("use a .png or .svg file name"));
        }
        let err = plot_lines("t", "x", "y", &[], &dir.0.join("e.svg")).unwrap_err();
        assert_eq!(err.to_string(), "nothing to plot: no series");
        let nan = vec![("a".to_string(), vec![(f64::NAN, 1.0)])];
        assert!(matches!(plot_lines("t", "x", "y", &nan, &dir.0.join("e.png")), Err(PlotError::NoData(_))));
        assert!(dir.files().is_empty());
    }

    #[test]
    fn tick_labels() {
        assert_eq!(tick_label(1000.0), "1000");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(-0.5), "-0.5");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(0.00012), "1.2e-4");
        assert_eq!(tick_label(2.5e6), "2.5e6");
    }

    #[test]
    fn bounds_and_padding() {
        let s = series();
        let ((x0, x1), (y0, y1)) = data_bounds(&s).unwrap();
        assert!((x0 - (1000.0 - 120.0)).abs() < 1e-9);
        assert!((x1 - (4000.0 + 120.0)).abs() < 1e-9);
        assert_eq!(y0, 30.0 - 50.0 * 0.08);
        assert!((y1 - (80.0 + 4.0)).abs() < 1e-9);
        // Non-negative data is not padded below zero; a flat line gets room.
        let flat = vec![("f".to_string(), vec![(1.0, 0.0), (2.0, 0.0)])];
        assert_eq!(data_bounds(&flat).unwrap().1, (0.0, 1.0));
        assert_eq!(pad(5.0, 5.0, 0.1), (4.5, 5.5));
        assert_eq!(clean_points(&[(3.0, 1.0), (1.0, 2.0), (2.0, f64::INFINITY)]), vec![(1.0, 2.0), (3.0, 1.0)]);
    }
}
