//! What `crm-server campaign` does, as a library: reading an uploaded
//! audience list and watching a campaign with a progress bar.

use std::path::Path;
use std::time::Duration;

use crm_core::domain::campaign::MAX_AUDIENCE_LIST;
use crm_core::{AccountId, Audience, CampaignId, CampaignView, ContactId, Crm, Error, Result};

/// Reads an audience list: one contact id or one phone per line (blank
/// lines and lines starting with `#` ignored). A file of ids is a
/// contact-id audience, anything else a phone audience; at most
/// [`MAX_AUDIENCE_LIST`] entries. [`Error::Validation`] on `file` when it
/// cannot be read, is empty, is too long, or mixes ids and phones.
pub fn read_audience(path: &Path) -> Result<Audience> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::validation("file", format!("{}: {e}", path.display())))?;
    let entries: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    if entries.is_empty() || entries.len() > MAX_AUDIENCE_LIST {
        return Err(Error::validation("file", format!("needs 1 to {MAX_AUDIENCE_LIST} entries, one per line")));
    }
    let ids: Vec<Option<ContactId>> = entries.iter().map(|l| l.parse::<ContactId>().ok()).collect();
    match ids.iter().filter(|i| i.is_some()).count() {
        0 => Ok(Audience::Phones { phones: entries.into_iter().map(str::to_owned).collect() }),
        n if n == entries.len() => Ok(Audience::Contacts { contact_ids: ids.into_iter().flatten().collect() }),
        _ => Err(Error::validation("file", "holds both contact ids and phones; use one kind per file")),
    }
}

/// Watches a campaign until it ends (completed or cancelled), every
/// `every`, drawing a progress bar of the recipients handled (sent, failed
/// or skipped) over the audience known so far, with the counters and the
/// ETA; returns its last view.
pub async fn watch(
    crm: &Crm,
    account: AccountId,
    id: CampaignId,
    progress: bool,
    every: Duration,
) -> Result<CampaignView> {
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    loop {
        let view = crm.get_campaign(account, id).await?;
        let k = view.counters;
        let total = k.recipients + view.unplanned.unwrap_or(0);
        bar.set_length(total);
        bar.set_position(k.sent + k.failed + k.skipped);
        let eta = view.eta.map(|t| format!(" eta {}", t.format("%H:%M:%S"))).unwrap_or_default();
        bar.set_message(format!(
            "{} · sent {} delivered {} read {} failed {} skipped {} replied {} in flight {}{eta}",
            view.campaign.state.as_str(),
            k.sent,
            k.delivered,
            k.read,
            k.failed,
            k.skipped,
            k.replied,
            k.in_flight
        ));
        if view.campaign.state.is_terminal() {
            bar.finish();
            return Ok(view);
        }
        tokio::time::sleep(every).await;
    }
}
