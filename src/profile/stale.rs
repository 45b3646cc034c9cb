//! Cleaning up staging files of writes that never finished.
//!
//! [`super::io::write_atomic`] stages data in `.NAME.tmp-PID-N[suffix]` next to
//! the target. A process killed mid-write leaves that file behind; the next
//! write to the same target removes the ones whose process is gone.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Without a process table to ask, staging files older than this are stale.
const STALE_AGE: Duration = Duration::from_secs(24 * 3600);

/// Removes `.{name}.tmp-PID-*` files in `dir` whose process no longer runs.
/// Best effort: errors are ignored, files of live processes are kept.
pub fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(staging_pid) else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && pid != std::process::id() && is_stale(pid, &entry.path()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The PID in `PID-N[suffix]`, the part of a staging name after `.tmp-`.
fn staging_pid(rest: &str) -> Option<u32> {
    let (pid, counter) = rest.split_once('-')?;
    let counter_ok = counter.chars().next().is_some_and(|c| c.is_ascii_digit());
    counter_ok.then(|| pid.parse().ok()).flatten()
}

fn is_stale(pid: u32, path: &Path) -> bool {
    let procfs = Path::new("/proc/self");
    if procfs.exists() {
        return !Path::new(&format!("/proc/{pid}")).exists();
    }
    let modified = fs::metadata(path).and_then(|m| m.modified());
    modified.ok().and_then(|t| SystemTime::now().duration_since(t).ok()).is_some_and(|age| age > STALE_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_staging_names() {
        assert_eq!(staging_pid("1234-0"), Some(1234));
        assert_eq!(staging_pid("1234-17.png"), Some(1234));
        assert_eq!(staging_pid("x-0"), None);
        assert_eq!(staging_pid("1234-"), None);
        assert_eq!(staging_pid("1234"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn removes_only_dead_processes_files_of_the_same_target() {
        let dir = std::env::temp_dir().join(format!("depthkv-stale-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // A child that has exited: its PID is free (and not reused this fast).
        let dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        let mut dead = dead;
        dead.wait().unwrap();
        let live_pid = std::process::id();
        let names = [
            format!(".out.json.tmp-{dead_pid}-0"),
            format!(".out.json.tmp-{dead_pid}-3.png"),
            format!(".out.json.tmp-{live_pid}-0"),
            format!(".other.json.tmp-{dead_pid}-0"),
            "out.json".to_string(),
        ];
        for n in &names {
            fs::write(dir.join(n), "x").unwrap();
        }
        remove_stale_temps(&dir, "out.json");
        let mut left: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        let mut want = vec![names[2].clone(), names[3].clone(), names[4].clone()];
        want.sort();
        assert_eq!(left, want);
        fs::remove_dir_all(&dir).unwrap();
    }
}
