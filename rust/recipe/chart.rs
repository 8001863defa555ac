//! PNG line charts for training curves, drawn with `plotters` (bitmap backend).
//!
//! Text is rendered with `ab_glyph`, so nothing from fontconfig/freetype is
//! needed at build time. The caller names the TrueType font file (the library
//! never searches the system for one); without a font, or when it cannot be
//! read, the chart is still drawn, only without any text.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

/// One panel of the chart: a named sequence of `(x, y)` points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
}

const WIDTH: u32 = 900;
const PANEL_HEIGHT: u32 = 300;
const TITLE_HEIGHT: u32 = 40;
const FONT_FAMILY: &str = "fmr-chart-sans";

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Registers `font` with plotters; returns whether text can be drawn. plotters keeps fonts
/// per process as `&'static [u8]`, so the first font registered successfully is kept for
/// every later chart of the process (its bytes are leaked once).
fn font_available(font: Option<&Path>) -> bool {
    static LOADED: OnceLock<()> = OnceLock::new();
    if LOADED.get().is_some() {
        return true;
    }
    let Some(bytes) = font.and_then(|p| std::fs::read(p).ok()) else {
        return false;
    };
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    if plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_err() {
        return false;
    }
    let _ = LOADED.set(());
    true
}

/// Draws one PNG with one panel per series stacked vertically (shared x axis = training step),
/// each panel with title, axis labels and a line+markers plot. Width 900 px, height 300 px per panel.
/// Text is drawn with the TrueType `font` when given and readable.
///
/// Points whose coordinates are not finite (NaN, ±inf) are skipped. Series
/// without points are drawn as empty panels; an empty `panels` slice gives a
/// single empty panel.
pub fn write_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    panels: &[Series],
    font: Option<&Path>,
) -> Result<(), String> {
    draw_chart(path, title, x_label, panels, font_available(font))
}

fn finite_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// Padded `[lo, hi]` range around the given values; `(0, 1)` when empty.
fn padded_range(values: impl Iterator<Item = f64>, pad_frac: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= f64::EPSILON * lo.abs().max(1.0) {
        let pad = (lo.abs() * 0.05).max(0.5);
        return (lo - pad, hi + pad);
    }
    (lo - span * pad_frac, hi + span * pad_frac)
}

fn draw_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    panels: &[Series],
    with_text: bool,
) -> Result<(), String> {
    let cleaned: Vec<(&str, Vec<(f64, f64)>)> = panels
        .iter()
        .map(|s| (s.name, finite_points(s.points)))
        .collect();
    let n_panels = cleaned.len().max(1) as u32;
    let title_height = if with_text && !title.is_empty() {
        TITLE_HEIGHT
    } else {
        0
    };
    let height = PANEL_HEIGHT * n_panels + title_height;

    let (x_lo, x_hi) = padded_range(
        cleaned.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.0)),
        0.02,
    );

    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (title_area, body) = root.split_vertically(title_height);
    if title_height > 0 {
        title_area
            .titled(title, (FONT_FAMILY, 24))
            .map_err(|e| e.to_string())?;
    }

    let areas = body.split_evenly((n_panels as usize, 1));
    for (i, area) in areas.iter().enumerate() {
        let (name, pts) = match cleaned.get(i) {
            Some((name, pts)) => (*name, pts.as_slice()),
            None => ("", &[][..]),
        };
        let color = COLORS[i % COLORS.len()];
        let (y_lo, y_hi) = padded_range(pts.iter().map(|p| p.1), 0.08);

        let mut builder = ChartBuilder::on(area);
        builder.margin(10);
        if with_text {
            builder
                .caption(name, (FONT_FAMILY, 18))
                .x_label_area_size(40)
                .y_label_area_size(70);
        }
        let mut chart = builder
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(|e| e.to_string())?;

        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(RGBColor(235, 235, 235));
        if with_text {
            mesh.x_desc(x_label)
                .y_desc(name)
                .label_style((FONT_FAMILY, 13))
                .axis_desc_style((FONT_FAMILY, 15));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| e.to_string())?;

        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                pts.to_vec(),
                color.stroke_width(2),
            )))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }

    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The font set-up installs (fonts-dejavu-core); charts lose their text when it is missing.
    const TEST_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("fmr_chart_{tag}_{}_{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn assert_png(path: &Path, expected_height: u32) {
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() > PNG_SIGNATURE.len() + 16, "file too small");
        assert_eq!(bytes[..8], PNG_SIGNATURE);
        // IHDR: width and height are big-endian u32 at offsets 16 and 20.
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!(w, WIDTH);
        assert_eq!(h, expected_height);
    }

    #[test]
    fn writes_png_with_one_panel_per_series() {
        let dir = temp_dir("basic");
        let path = dir.join("chart.png");
        let reward: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64 * 10.0, (i as f64 / 10.0).tanh()))
            .collect();
        let loss: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64 * 10.0, 2.0 / (1.0 + i as f64)))
            .collect();
        let panels = [
            Series {
                name: "reward",
                points: &reward,
            },
            Series {
                name: "loss",
                points: &loss,
            },
        ];
        write_chart(&path, "GRPO run", "step", &panels, Some(TEST_FONT.as_ref())).unwrap();
        let title = if font_available(Some(TEST_FONT.as_ref())) {
            TITLE_HEIGHT
        } else {
            0
        };
        assert_png(&path, 2 * PANEL_HEIGHT + title);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn handles_empty_and_non_finite_series() {
        let dir = temp_dir("edge");
        let with_nan = [
            (0.0, 1.0),
            (1.0, f64::NAN),
            (f64::NAN, 2.0),
            (2.0, f64::INFINITY),
            (3.0, 0.5),
        ];
        let all_nan = [(f64::NAN, f64::NAN), (1.0, f64::NAN)];
        let single = [(5.0, 5.0)];
        let panels = [
            Series {
                name: "empty",
                points: &[],
            },
            Series {
                name: "with nan",
                points: &with_nan,
            },
            Series {
                name: "all nan",
                points: &all_nan,
            },
            Series {
                name: "single",
                points: &single,
            },
        ];
        for with_text in [true, false] {
            let path = dir.join(format!("edge_{with_text}.png"));
            let with_text = with_text && font_available(Some(TEST_FONT.as_ref()));
            draw_chart(&path, "edge cases", "step", &panels, with_text).unwrap();
            let title = if with_text { TITLE_HEIGHT } else { 0 };
            assert_png(&path, 4 * PANEL_HEIGHT + title);
        }

        let path = dir.join("no_panels.png");
        write_chart(&path, "", "step", &[], None).unwrap();
        assert_png(&path, PANEL_HEIGHT);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_directory_is_an_error_not_a_panic() {
        let dir = temp_dir("missing");
        let path = dir.join("no_such_subdir").join("chart.png");
        let pts = [(0.0, 1.0), (1.0, 2.0)];
        let panels = [Series {
            name: "x",
            points: &pts,
        }];
        assert!(write_chart(&path, "t", "step", &panels, None).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
