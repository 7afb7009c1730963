//! `top PID`: a live view of a traced process in the terminal, refreshed
//! about once a second — heap now, peak so far, resident memory, the
//! allocation rate, and the top sites by live bytes and by growth since
//! the view started. `q`, Esc or Ctrl-C leaves; the program is never
//! stopped or touched beyond the light snapshots it is asked for (see
//! `memscope_format::control::STATS_PREFIX`).

mod model;
mod view;

use crate::control::Target;
use crate::Outcome;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Watch a traced process's heap live (q or Ctrl-C leaves; the program goes on).
#[derive(clap::Args)]
pub struct Args {
    /// The traced process (started under `memscope-cli run` or with LD_PRELOAD).
    pid: u32,
    /// How often to refresh (e.g. 1s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::run::parse_duration)]
    interval: Duration,
}

pub fn main(a: Args) -> Outcome {
    let target = Target::find(a.pid)?;
    if !std::io::stdout().is_terminal() {
        return Err("top needs a terminal (for a file, use memscope-cli snapshot)".into());
    }
    match view(&target, a.interval)? {
        Leave::Key => {}
        Leave::Ended(why) => eprintln!("memscope-cli: {why}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `run --live`: the view of the command's process `pid`, from as soon as
/// it says it is traced until `q`/Ctrl-C or its end; nothing is printed
/// after (run's own summary follows).
pub fn watch_live(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let target = loop {
        match Target::find(pid) {
            Ok(t) => break t,
            Err(_) if Instant::now() < deadline && crate::control::alive(pid) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(_) => return,
        }
    };
    let _ = view(&target, Duration::from_secs(1));
}

/// Shows the view until a key or the process's end.
fn view(target: &Target, interval: Duration) -> Result<Leave, String> {
    let tmp = tempfile::Builder::new()
        .prefix("memscope-top-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {}", crate::load::io_reason(&e)))?;
    let path = tmp.path().join("stats.json");
    let path = path
        .to_str()
        .ok_or("the temporary directory's path is not UTF-8")?
        .to_string();
    let first = sample(target, &path)?;
    let mut state = model::State::new(first);
    let mut terminal = ratatui::init();
    let ended = run(&mut terminal, target, &path, &mut state, interval);
    ratatui::restore();
    ended
}

enum Leave {
    Key,
    Ended(String),
}

/// Asks for a light snapshot and reads it.
fn sample(target: &Target, path: &str) -> Result<model::Sample, String> {
    let written = target.request(path, true, Duration::from_secs(30))?;
    let snap = memscope_format::read_snapshot_file(std::path::Path::new(&written)).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&written);
    Ok(model::Sample::new(snap, target.pid))
}

fn run(
    terminal: &mut ratatui::DefaultTerminal,
    target: &Target,
    path: &str,
    state: &mut model::State,
    interval: Duration,
) -> Result<Leave, String> {
    let mut next = Instant::now();
    loop {
        terminal
            .draw(|f| view::draw(f, state))
            .map_err(|e| format!("cannot draw: {e}"))?;
        next += interval;
        // Keys until the next refresh.
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if event::poll(left).map_err(|e| format!("cannot read the terminal: {e}"))? {
                if let Event::Key(k) = event::read().map_err(|e| format!("cannot read the terminal: {e}"))? {
                    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if k.kind == KeyEventKind::Press && (ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc))
                    {
                        return Ok(Leave::Key);
                    }
                }
            }
        }
        match sample(target, path) {
            Ok(s) => state.update(s),
            Err(e) => return Ok(Leave::Ended(e)),
        }
        if Instant::now() > next + interval {
            // A slow snapshot: refresh from now on rather than catch up.
            next = Instant::now();
        }
    }
}
