//! What each heatmap view shows, as rows of per-position values in [0, 1]
//! (the widget bins them to the panel): per layer, the share of KV heads
//! keeping a position, or the prefill attention; per KV head of the selected
//! layer, whether it keeps a position; per decode report of the selected
//! layer, the share of KV heads holding each position seen so far (a row is
//! as long as the positions its report had seen).

use std::borrow::Cow;

use super::app::{App, HeatMode};
use crate::session::protocol::{held_in, DecodeOccupancy, Occupancy};

/// Rows of the current view: layers, KV heads or decode reports.
pub fn items(app: &App) -> usize {
    let pane = app.selected_pane();
    match app.heat_mode {
        HeatMode::Keep | HeatMode::Attention => app.n_layers(),
        HeatMode::Heads => pane.occupancy.as_ref().and_then(|o| o.kept.get(app.selected)).map_or(0, Vec::len),
        HeatMode::Decode => pane.decode.len(),
    }
}

/// Positions across: the prompt, or the prompt and every generated token
/// reported so far (decode view).
pub fn domain(app: &App) -> usize {
    let len = app.prompt_len();
    match app.heat_mode {
        HeatMode::Decode => app.selected_pane().decode.last().map_or(len, |d| d.positions.max(len)),
        _ => len,
    }
}

/// The rows themselves, one per item.
pub fn rows(app: &App) -> Cow<'_, [Vec<f32>]> {
    let pane = app.selected_pane();
    match app.heat_mode {
        HeatMode::Keep => Cow::Borrowed(&pane.share),
        HeatMode::Attention => Cow::Borrowed(&app.attention),
        HeatMode::Heads => Cow::Owned(pane.occupancy.as_ref().map_or_else(Vec::new, |o| head_rows(o, app.selected))),
        HeatMode::Decode => Cow::Owned(pane.decode.iter().map(|d| decode_row(d, app.selected)).collect()),
    }
}

/// Per KV head of `layer`: 1 where the head keeps the prompt position.
pub fn head_rows(occ: &Occupancy, layer: usize) -> Vec<Vec<f32>> {
    let Some(heads) = occ.kept.get(layer) else { return Vec::new() };
    heads
        .iter()
        .map(|kept| {
            let mut row = vec![0f32; occ.prompt_len];
            for &p in kept {
                if let Some(v) = row.get_mut(p as usize) {
                    *v = 1.0;
                }
            }
            row
        })
        .collect()
}

/// Share of `layer`'s KV heads holding each position the report had seen.
pub fn decode_row(d: &DecodeOccupancy, layer: usize) -> Vec<f32> {
    let mut row = vec![0f32; d.positions];
    let Some(heads) = d.held.get(layer) else { return row };
    let w = 1.0 / heads.len().max(1) as f32;
    for ranges in heads {
        for &(s, e) in ranges {
            let end = (e as usize).min(row.len());
            for v in row.get_mut((s as usize).min(end)..end).unwrap_or_default() {
                *v += w;
            }
        }
    }
    row
}

/// Positions each KV head of `layer` keeps (for the heads view's legend).
pub fn head_counts(occ: &Occupancy, layer: usize) -> Vec<usize> {
    occ.kept.get(layer).map_or_else(Vec::new, |heads| heads.iter().map(Vec::len).collect())
}

/// Of what `layer` holds after the report, the share that is generated
/// tokens (positions from `prompt_len` on).
pub fn generated_share(d: &DecodeOccupancy, layer: usize, prompt_len: usize) -> f32 {
    let Some(heads) = d.held.get(layer) else { return 0.0 };
    let (p, end) = (prompt_len as u32, d.positions as u32);
    let (gen, all): (usize, usize) =
        heads.iter().map(|r| (held_in(r, p, end), held_in(r, 0, end))).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    gen as f32 / all.max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rows_average_the_heads_over_seen_positions() {
        let d = DecodeOccupancy { step: 3, positions: 8, held: vec![vec![vec![(0, 2), (5, 8)], vec![(0, 1), (6, 8)]]] };
        assert_eq!(decode_row(&d, 0), vec![1.0, 0.5, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0]);
        assert_eq!(decode_row(&d, 3), vec![0.0; 8], "a layer the report lacks holds nothing");
        // Held: 5 + 3 positions, of which 3 + 2 are generated (from 5 on).
        assert!((generated_share(&d, 0, 5) - 5.0 / 8.0).abs() < 1e-6);
    }

    #[test]
    fn head_rows_mark_each_heads_own_positions() {
        let occ = Occupancy { prompt_len: 4, kept: vec![vec![vec![0, 3], vec![0, 1, 2]]] };
        assert_eq!(head_rows(&occ, 0), vec![vec![1.0, 0.0, 0.0, 1.0], vec![1.0, 1.0, 1.0, 0.0]]);
        assert_eq!(head_counts(&occ, 0), vec![2, 3]);
        assert!(head_rows(&occ, 1).is_empty());
    }
}
