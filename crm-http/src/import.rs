//! CSV contact import (the `crm-server contacts import` command).

use serde::Serialize;
use std::path::Path;

use crm_core::{AccountId, Crm, Error, LeadStage, NewContact, OptInStatus, Phone, Result};

/// One refused CSV row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedLine {
    /// 1-based line in the file (the header is line 1).
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CsvReport {
    /// Contacts stored.
    pub imported: usize,
    /// Rows refused, in file order: the first [`MAX_LISTED_REJECTIONS`] found.
    pub rejected: Vec<RejectedLine>,
    /// Rows refused beyond those listed in `rejected`: counted, not kept.
    pub rejected_unlisted: usize,
}

impl CsvReport {
    /// Every refused row, listed or not.
    pub fn rejected_total(&self) -> usize {
        self.rejected.len() + self.rejected_unlisted
    }

    fn reject(&mut self, line: usize, reason: String) {
        if self.rejected.len() < MAX_LISTED_REJECTIONS {
            self.rejected.push(RejectedLine { line, reason });
        } else {
            self.rejected_unlisted += 1;
        }
    }
}

/// Refused rows listed one by one in a [`CsvReport`]; more are counted.
pub const MAX_LISTED_REJECTIONS: usize = 1000;

/// The longest CSV row, in bytes: a longer one (a hostile file of one huge
/// quoted field) stops the import instead of being read into memory.
pub const MAX_ROW_BYTES: u64 = 64 * 1024;

/// The CSV reader's buffer: the most read past a row's start beyond [`MAX_ROW_BYTES`].
const READ_BUFFER: u64 = 8 * 1024;

/// A reader that fails once the row being read (which starts at the byte
/// offset in `row_start`, set after each record) passes [`MAX_ROW_BYTES`],
/// so the CSV reader never holds a longer one.
struct RowBounded<R> {
    inner: R,
    read: u64,
    row_start: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for RowBounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = self.row_start.load(std::sync::atomic::Ordering::Relaxed);
        if self.read.saturating_sub(start) > MAX_ROW_BYTES + READ_BUFFER {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a row is longer than {MAX_ROW_BYTES} bytes"),
            ));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

#[derive(Debug, Default)]
struct Columns {
    name: Option<usize>,
    phone: Option<usize>,
    email: Option<usize>,
    whatsapp_id: Option<usize>,
    tags: Option<usize>,
    lead_score: Option<usize>,
    lead_stage: Option<usize>,
    opt_in: Option<usize>,
}

fn columns(headers: &csv::StringRecord) -> Result<Columns> {
    let mut c = Columns::default();
    for (i, h) in headers.iter().enumerate() {
        let slot = match h.trim().to_lowercase().replace([' ', '-'], "_").as_str() {
            "name" | "nome" => &mut c.name,
            "phone" | "telefone" | "celular" | "whatsapp" => &mut c.phone,
            "email" | "e_mail" => &mut c.email,
            "whatsapp_id" | "wa_id" => &mut c.whatsapp_id,
            "tags" => &mut c.tags,
            "lead_score" | "score" => &mut c.lead_score,
            "lead_stage" | "stage" => &mut c.lead_stage,
            "opt_in" | "optin" => &mut c.opt_in,
            _ => continue,
        };
        *slot = Some(i);
    }
    if c.name.is_none() || c.phone.is_none() {
        return Err(Error::validation("file", "the header row needs `name` and `phone` columns"));
    }
    Ok(c)
}

fn row_to_contact(c: &Columns, rec: &csv::StringRecord, default_country: &str) -> Result<NewContact> {
    let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(str::trim).filter(|s| !s.is_empty());
    let phone = Phone::parse_with_default_country(get(c.phone).unwrap_or(""), default_country)?;
    Ok(NewContact {
        name: get(c.name).unwrap_or("").to_owned(),
        phone: phone.to_string(),
        email: get(c.email).map(str::to_owned),
        whatsapp_id: get(c.whatsapp_id).map(str::to_owned),
        tags: get(c.tags)
            .map(|t| t.split([';', '|']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default(),
        metadata: None,
        lead_score: get(c.lead_score)
            .map(|s| s.parse::<i64>().map_err(|_| Error::validation("lead_score", "must be a whole number")))
            .transpose()?,
        lead_stage: get(c.lead_stage).map(LeadStage::parse).transpose()?,
        opt_in: get(c.opt_in)
            .map(|s| match s.to_lowercase().as_str() {
                "yes" | "sim" | "true" | "1" => Ok(OptInStatus::OptedIn),
                "no" | "não" | "nao" | "false" | "0" => Ok(OptInStatus::OptedOut),
                other => OptInStatus::parse(other),
            })
            .transpose()?,
        opt_in_source: get(c.opt_in).map(|_| "csv-import".to_owned()),
    })
}

/// Batches handed to the store at once: while one is written, the next is
/// read, validated and written on another connection.
pub const BATCHES_IN_FLIGHT: usize = 2;

/// Canonical phones (`+` and up to 15 digits, as `row_to_contact` writes
/// them) → the file line they first appeared on, kept as one integer per
/// phone (16 bytes an entry instead of a string's ~60), so a file of a
/// million rows needs tens of megabytes, not hundreds.
#[derive(Debug, Default)]
struct FirstLines {
    packed: std::collections::HashMap<u64, usize>,
    /// Phones that do not pack (none from `row_to_contact`; kept for safety).
    other: std::collections::HashMap<String, usize>,
}

impl FirstLines {
    /// The digits with their count, so `+1` and `+01` differ.
    fn pack(phone: &str) -> Option<u64> {
        let digits = phone.strip_prefix('+')?;
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: u64 = digits.parse().ok()?;
        Some(value * 16 + digits.len() as u64)
    }

    /// The line `phone` first appeared on, or records `line` for it.
    fn first_or_insert(&mut self, phone: &str, line: usize) -> Option<usize> {
        let entry = match Self::pack(phone) {
            Some(key) => self.packed.entry(key),
            None => return self.other_first_or_insert(phone, line),
        };
        match entry {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(line);
                None
            }
        }
    }

    fn other_first_or_insert(&mut self, phone: &str, line: usize) -> Option<usize> {
        match self.other.get(phone) {
            Some(first) => Some(*first),
            None => {
                self.other.insert(phone.to_owned(), line);
                None
            }
        }
    }
}

/// A batch handed to the store: its rows' lines and the running import.
type InFlight = (Vec<usize>, tokio::task::JoinHandle<Result<crm_core::ImportReport>>);

/// Imports `path` into `account` in batches of `batch` rows, with a progress
/// bar on stderr when `progress` is set. The file is streamed: memory holds
/// the batches in flight and one integer per phone seen (for repeats), not
/// the file. A row that cannot be read or validated, or whose phone exists
/// already or repeats an earlier row, is reported with its line; the others
/// are stored, each batch in one transaction, up to [`BATCHES_IN_FLIGHT`]
/// batches at once. A storage failure stops the import: batches before the
/// failed one stay stored, the failed batch writes nothing, and a batch that
/// was already in flight beside it may be stored too.
pub async fn import_csv(
    crm: &Crm,
    account: AccountId,
    path: &Path,
    default_country: &str,
    batch: usize,
    progress: bool,
) -> Result<CsvReport> {
    import_csv_with(crm, account, path, default_country, batch, BATCHES_IN_FLIGHT, progress).await
}

/// [`import_csv`] with up to `in_flight` batches (at least 1) written at
/// once; 1 writes them one after the other, so a storage failure leaves
/// exactly the batches before the failed one stored.
pub async fn import_csv_with(
    crm: &Crm,
    account: AccountId,
    path: &Path,
    default_country: &str,
    batch: usize,
    in_flight_batches: usize,
    progress: bool,
) -> Result<CsvReport> {
    let in_flight_batches = in_flight_batches.max(1);
    if !(1..=crm_core::MAX_IMPORT_BATCH).contains(&batch) {
        return Err(Error::validation("batch", format!("must be 1 to {} rows", crm_core::MAX_IMPORT_BATCH)));
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let file = std::fs::File::open(path).map_err(|e| Error::validation("file", format!("{}: {e}", path.display())))?;
    let row_start = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .buffer_capacity(READ_BUFFER as usize)
        .from_reader(RowBounded { inner: file, read: 0, row_start: row_start.clone() });
    let headers = reader.headers().map_err(|e| Error::validation("file", e.to_string()))?.clone();
    let cols = columns(&headers)?;
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut report = CsvReport::default();
    let mut pending: Vec<(usize, NewContact)> = Vec::with_capacity(batch);
    let mut record = csv::StringRecord::new();
    let mut first_line = FirstLines::default();
    let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
    loop {
        let line = reader.position().line() as usize;
        row_start.store(reader.position().byte(), std::sync::atomic::Ordering::Relaxed);
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let at = record.position().map_or(line, |p| p.line() as usize);
                match row_to_contact(&cols, &record, default_country) {
                    // Repeats are found here, across batches, and named by the
                    // file line they repeat (the service only knows batch rows).
                    Ok(c) => match first_line.first_or_insert(&c.phone, at) {
                        Some(first) => report.reject(at, format!("phone repeats line {first}")),
                        None => pending.push((at, c)),
                    },
                    Err(e) => report.reject(at, e.to_string()),
                }
            }
            // The file cannot be read on (or a row is too long): stop, after
            // the batches already handed to the store.
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                while let Some((_, task)) = in_flight.pop_front() {
                    let _ = task.await;
                }
                return Err(Error::validation("file", format!("line {line}: {e}")));
            }
            Err(e) => report.reject(line, format!("unreadable row: {e}")),
        }
        if pending.len() >= batch {
            in_flight.push_back(send(crm, account, &mut pending));
            if in_flight.len() >= in_flight_batches {
                settle_oldest(&mut in_flight, &mut report).await?;
            }
            bar.set_position(reader.position().byte());
            bar.set_message(format!("{} imported, {} rejected", report.imported, report.rejected.len()));
        }
    }
    if !pending.is_empty() {
        in_flight.push_back(send(crm, account, &mut pending));
    }
    while !in_flight.is_empty() {
        settle_oldest(&mut in_flight, &mut report).await?;
    }
    bar.finish_with_message(format!("{} imported, {} rejected", report.imported, report.rejected.len()));
    report.rejected.sort_by_key(|r| r.line);
    Ok(report)
}

/// Hands the pending rows to the store as one batch, running beside the caller.
fn send(crm: &Crm, account: AccountId, pending: &mut Vec<(usize, NewContact)>) -> InFlight {
    let (lines, rows): (Vec<usize>, Vec<NewContact>) = pending.drain(..).unzip();
    let crm = crm.clone();
    (lines, tokio::spawn(async move { crm.import_contacts(account, rows).await }))
}

/// Waits for the oldest batch in flight and adds its outcome to `report`.
/// On a failure, waits for the other batches in flight before returning it.
async fn settle_oldest(in_flight: &mut std::collections::VecDeque<InFlight>, report: &mut CsvReport) -> Result<()> {
    let Some((lines, task)) = in_flight.pop_front() else { return Ok(()) };
    let outcome = task.await.map_err(|e| Error::Storage {
        message: format!("an import batch did not finish: {e}"),
        transient: false,
        source: None,
    });
    let r = match outcome.and_then(|r| r) {
        Ok(r) => r,
        Err(e) => {
            while let Some((_, task)) = in_flight.pop_front() {
                let _ = task.await;
            }
            return Err(e);
        }
    };
    report.imported += r.imported;
    for rej in r.rejected {
        report.reject(lines.get(rej.index).copied().unwrap_or(0), rej.reason);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::FirstLines;

    #[test]
    fn first_lines_pack_phones_and_tell_repeats() {
        let mut f = FirstLines::default();
        assert_eq!(f.first_or_insert("+5511987654321", 2), None);
        assert_eq!(f.first_or_insert("+5511987654321", 9), Some(2));
        // The digit count is part of the key.
        assert_ne!(FirstLines::pack("+1"), FirstLines::pack("+01"));
        assert_eq!(FirstLines::pack("+123456789012345").map(|k| k % 16), Some(15));
        assert_eq!(FirstLines::pack("+1234567890123456"), None);
        assert_eq!(f.first_or_insert("not a phone", 3), None);
        assert_eq!(f.first_or_insert("not a phone", 4), Some(3));
    }
}
