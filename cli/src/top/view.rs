//! Draws `top`'s screen with ratatui: a header of figures, the sites with
//! most live bytes, the sites that grew most since the view started.

use super::model::{SiteRow, State};
use crate::text::{bytes, bytes_delta, count, duration, term};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;

pub fn draw(f: &mut Frame, st: &State) {
    let [head, live, grown, foot] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let s = &st.now.snap;
    let m = &s.summary;
    let (per_s, bytes_s) = st.rate();
    let since = s.process.end_unix_ns.saturating_sub(st.started_ns);
    let lines = vec![
        Line::from(format!("memscope top — {}", term(&crate::summary::who(&s.process))))
            .style(Style::new().add_modifier(Modifier::BOLD)),
        Line::from(format!(
            "heap now:   {:>12} in {} blocks",
            bytes(m.live_at_exit_bytes),
            count(m.live_at_exit_allocations)
        )),
        Line::from(format!(
            "peak so far:{:>12} in {} blocks",
            bytes(m.peak_live_bytes),
            count(m.peak_live_allocations)
        )),
        Line::from(format!(
            "resident:   {:>12}    allocations: {}/s ({}/s)",
            st.now.rss.map_or("?".to_string(), bytes),
            count(per_s.round() as u64),
            bytes(bytes_s.round() as u64)
        )),
        Line::from(format!(
            "watching for {}; {} allocations, {} frees in all",
            duration(since),
            count(m.total_allocations + m.reallocs),
            count(m.total_frees)
        )),
    ];
    f.render_widget(Paragraph::new(lines), head);
    let rows = (live.height as usize).saturating_sub(3);
    f.render_widget(
        sites_table(&st.top_live(rows), "top sites by bytes live now", false),
        live,
    );
    let rows = (grown.height as usize).saturating_sub(3);
    f.render_widget(
        sites_table(&st.top_growth(rows), "top sites by growth since the view started", true),
        grown,
    );
    f.render_widget(
        Paragraph::new("q, Esc or Ctrl-C: leave (the program goes on)").style(Style::new().add_modifier(Modifier::DIM)),
        foot,
    );
}

fn sites_table(rows: &[SiteRow], title: &str, growth: bool) -> Table<'static> {
    let header = Row::new(if growth {
        ["grown", "live now", "blocks", "site"]
    } else {
        ["live now", "blocks", "grown", "site"]
    })
    .style(Style::new().add_modifier(Modifier::BOLD));
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            let (live, blocks, grown) = (bytes(r.live_bytes), count(r.live_blocks), bytes_delta(r.growth));
            let cells = if growth {
                [grown, live, blocks, term(&r.label)]
            } else {
                [live, blocks, grown, term(&r.label)]
            };
            Row::new(cells)
        })
        .collect();
    let widths = [
        Constraint::Length(11),
        Constraint::Length(11),
        Constraint::Length(10),
        Constraint::Fill(1),
    ];
    let empty = if growth { " (nothing grew yet)" } else { "" };
    let title = format!(" {title}{} ", if rows.is_empty() { empty } else { "" });
    Table::new(body, widths)
        .header(header)
        .block(Block::bordered().title(title))
}
