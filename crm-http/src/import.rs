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
    /// Rows refused, in file order.
    pub rejected: Vec<RejectedLine>,
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

/// Imports `path` into `account` in batches of `batch` rows, with a progress
/// bar on stderr when `progress` is set. A row that cannot be read or
/// validated, or whose phone exists already or repeats an earlier row, is
/// reported with its line; the others are stored. A storage failure stops the
/// import (earlier batches stay stored, the failed batch writes nothing).
pub async fn import_csv(
    crm: &Crm,
    account: AccountId,
    path: &Path,
    default_country: &str,
    batch: usize,
    progress: bool,
) -> Result<CsvReport> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| Error::validation("file", format!("{}: {e}", path.display())))?;
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
    // Canonical phone (as `row_to_contact` writes it) → the line it first appeared on.
    let mut first_line: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let at = record.position().map_or(line, |p| p.line() as usize);
                match row_to_contact(&cols, &record, default_country) {
                    // Repeats are found here, across batches, and named by the
                    // file line they repeat (the service only knows batch rows).
                    Ok(c) => match first_line.get(&c.phone) {
                        Some(first) => report
                            .rejected
                            .push(RejectedLine { line: at, reason: format!("phone repeats line {first}") }),
                        None => {
                            first_line.insert(c.phone.clone(), at);
                            pending.push((at, c));
                        }
                    },
                    Err(e) => report.rejected.push(RejectedLine { line: at, reason: e.to_string() }),
                }
            }
            Err(e) => report.rejected.push(RejectedLine { line, reason: format!("unreadable row: {e}") }),
        }
        if pending.len() >= batch {
            flush(crm, account, &mut pending, &mut report).await?;
            bar.set_position(reader.position().byte());
            bar.set_message(format!("{} imported, {} rejected", report.imported, report.rejected.len()));
        }
    }
    flush(crm, account, &mut pending, &mut report).await?;
    bar.finish_with_message(format!("{} imported, {} rejected", report.imported, report.rejected.len()));
    report.rejected.sort_by_key(|r| r.line);
    Ok(report)
}

async fn flush(
    crm: &Crm,
    account: AccountId,
    pending: &mut Vec<(usize, NewContact)>,
    report: &mut CsvReport,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let (lines, rows): (Vec<usize>, Vec<NewContact>) = pending.drain(..).unzip();
    let r = crm.import_contacts(account, rows).await?;
    report.imported += r.imported;
    for rej in r.rejected {
        let line = lines.get(rej.index).copied().unwrap_or(0);
        report.rejected.push(RejectedLine { line, reason: rej.reason });
    }
    Ok(())
}
