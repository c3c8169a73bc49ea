//! Owns following a log file as it grows, like `tail -F`: complete lines only (a line
//! being written waits for its end), through rotation (the path names a new file: the
//! old one is read to its end first) and truncation (read again from the start), with
//! the position saved to a state file so a restart goes on where it stopped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a follower is: which file (inode) and how far into it, and the lines before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub inode: u64,
    /// Bytes of complete lines read.
    pub offset: u64,
    /// Lines read (the next line's number is `lines + 1`).
    pub lines: u64,
}

/// One complete line, with its number in its file and the position after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub number: u64,
    pub text: String,
    pub after: Position,
}

/// What happened to the file since the last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// The same file, maybe grown.
    Same,
    /// The path names another file now (rotated): lines come from its start.
    Rotated,
    /// The file shrank (truncated): lines come from its start again.
    Truncated,
}

/// Follows the file at `path`.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    position: Position,
    partial: Vec<u8>,
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// At most this much is read per call (a large backlog comes in slices).
const MAX_READ: usize = 4 << 20;

impl Follower {
    /// Follows `path` from its start.
    pub fn new(path: &Path) -> Follower {
        Follower {
            path: path.to_path_buf(),
            file: None,
            position: Position::default(),
            partial: Vec::new(),
        }
    }

    pub fn position(&self) -> Position {
        self.position
    }

    /// The complete lines written since the last call (at most about 4 MB of them), and
    /// what happened to the file. A missing file reads as nothing yet.
    pub fn read_lines(&mut self) -> std::io::Result<(Vec<Line>, Turn)> {
        let mut turn = Turn::Same;
        let on_disk = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut lines = Vec::new();
        if let (Some(file), Some(meta)) = (&self.file, &on_disk) {
            if inode(meta) != self.position.inode {
                // Rotated: what the old file still holds comes first.
                self.read_open(&mut lines)?;
                if !lines.is_empty() {
                    return Ok((lines, Turn::Same));
                }
                self.file = None;
                turn = Turn::Rotated;
            } else if file.metadata()?.len() < self.position.offset {
                self.file = None;
                turn = Turn::Truncated;
            }
        }
        if self.file.is_none() {
            let Some(meta) = on_disk else {
                return Ok((lines, turn));
            };
            let mut file = File::open(&self.path)?;
            let fresh = inode(&meta) != self.position.inode || turn != Turn::Same;
            if fresh {
                self.position = Position {
                    inode: inode(&meta),
                    ..Position::default()
                };
                self.partial.clear();
            }
            file.seek(SeekFrom::Start(self.position.offset))?;
            self.file = Some(file);
        }
        self.read_open(&mut lines)?;
        Ok((lines, turn))
    }

    fn read_open(&mut self, lines: &mut Vec<Line>) -> std::io::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let mut buf = vec![0u8; MAX_READ];
        let n = file.read(&mut buf)?;
        buf.truncate(n);
        let mut start = 0;
        for end in memchr_all(&buf) {
            let mut bytes = std::mem::take(&mut self.partial);
            bytes.extend_from_slice(&buf[start..end]);
            self.position.offset += (bytes.len() + 1) as u64;
            self.position.lines += 1;
            start = end + 1;
            lines.push(Line {
                number: self.position.lines,
                text: String::from_utf8_lossy(&bytes).into_owned(),
                after: self.position,
            });
        }
        // Offsets count complete lines only: a partial line's bytes are read again
        // after a restart.
        self.partial.extend_from_slice(&buf[start..]);
        Ok(())
    }
}

/// Positions of `\n` in `buf`.
fn memchr_all(buf: &[u8]) -> impl Iterator<Item = usize> + '_ {
    buf.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
}

/// Reads the position saved in `path` (none: start of the file).
pub fn load_position(path: &Path) -> std::io::Result<Option<Position>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Saves `position` to `path` atomically (write then rename).
pub fn save_position(path: &Path, position: Position) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&position).unwrap_or_default())?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn complete_lines_only_through_growth_rotation_and_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("queue_log");
        let mut f = Follower::new(&path);
        assert_eq!(f.read_lines().expect("read").0, [], "no file yet");
        let mut file = File::create(&path).expect("create");
        write!(file, "a\nb\npart").expect("write");
        let (lines, turn) = f.read_lines().expect("read");
        assert_eq!((texts(&lines), turn), (vec!["a", "b"], Turn::Same));
        assert_eq!(lines[1].after.offset, 4, "complete lines only");
        write!(file, "ial\nc\n").expect("write");
        let (lines, _) = f.read_lines().expect("read");
        assert_eq!(texts(&lines), ["partial", "c"]);
        assert_eq!(lines[1].number, 4);
        // Rotation: the old file gets a last line, then the path names a new one.
        writeln!(file, "d").expect("write");
        std::fs::rename(&path, dir.path().join("queue_log.1")).expect("rotate");
        let mut new = File::create(&path).expect("create");
        write!(new, "e\ng\n").expect("write");
        let (lines, _) = f.read_lines().expect("read");
        assert_eq!(texts(&lines), ["d"], "the old file to its end first");
        let (lines, turn) = f.read_lines().expect("read");
        assert_eq!((texts(&lines), turn), (vec!["e", "g"], Turn::Rotated));
        assert_eq!(lines[0].number, 1);
        // Truncation (copytruncate): from the start again.
        new.set_len(0).expect("truncate");
        drop(new);
        std::fs::write(&path, "f\n").expect("write");
        let (lines, turn) = f.read_lines().expect("read");
        assert_eq!((texts(&lines), turn), (vec!["f"], Turn::Truncated));
    }

    #[test]
    fn a_position_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("pos.json");
        assert_eq!(load_position(&state).expect("load"), None);
        let p = Position {
            inode: 7,
            offset: 120,
            lines: 3,
        };
        save_position(&state, p).expect("save");
        assert_eq!(load_position(&state).expect("load"), Some(p));
    }
}
