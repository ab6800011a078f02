//! The overview page's data: the facts the metrics of
//! [`crm_core::dashboard`] are computed over, read through the service, and
//! the two charts, drawn as SVG by plotters.

use chrono::{DateTime, NaiveDate, Utc};
use plotters::prelude::*;

use crm_core::dashboard::{Author, ContactFact, MessageFact, UserAction};
use crm_core::{AccountId, ContactQuery, Crm, Direction, LeadStage, PageRequest, Result};

/// What the overview is computed over.
#[derive(Debug, Default)]
pub(super) struct Facts {
    pub messages: Vec<MessageFact>,
    pub contacts: Vec<ContactFact>,
    pub actions: Vec<UserAction>,
}

/// Outbound messages queued by automation rules, sequences and campaigns carry a client
/// reference with one of these prefixes; every other outbound message was
/// sent by a person (the dashboard or the API).
const AUTOMATED_REFERENCES: [&str; 3] = ["automation:", "sequence:", "campaign:"];

/// Reads the account's contacts, the messages of every thread active since
/// `since`, and the users' recorded actions (their dashboard logins).
pub(super) async fn gather(crm: &Crm, account: AccountId, since: DateTime<Utc>) -> Result<Facts> {
    let mut facts = Facts::default();
    let mut active_threads = Vec::new();
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT)?;
    loop {
        let contacts = crm.list_contacts(account, &ContactQuery { page, ..ContactQuery::default() }).await?;
        for c in &contacts.items {
            facts.contacts.push(ContactFact { created_at: c.created_at, stage: c.lead_stage });
            let last = c.last_inbound_at.max(c.last_outbound_at);
            if last.is_some_and(|at| at >= since) {
                active_threads.push(c.id);
            }
        }
        match contacts.next_cursor {
            Some(cursor) => page = PageRequest::new(Some(&cursor), PageRequest::MAX_LIMIT)?,
            None => break,
        }
    }
    for contact in active_threads {
        let mut page = PageRequest::first(PageRequest::MAX_LIMIT)?;
        loop {
            let thread = crm.list_thread(account, contact, &page).await?;
            for m in thread.items.iter().filter(|m| m.created_at >= since) {
                let author = match m.direction {
                    Direction::Inbound => Author::Contact,
                    Direction::Outbound => {
                        let reference = m.client_reference.as_deref().unwrap_or("");
                        if AUTOMATED_REFERENCES.iter().any(|p| reference.starts_with(p)) {
                            Author::Automation
                        } else {
                            Author::Human
                        }
                    }
                };
                facts.messages.push(MessageFact { thread: contact, direction: m.direction, author, at: m.created_at });
            }
            match thread.next_cursor {
                Some(cursor) => page = PageRequest::new(Some(&cursor), PageRequest::MAX_LIMIT)?,
                None => break,
            }
        }
    }
    for user in crm.store().list_users(account).await? {
        for session in crm.list_sessions(account, user.id).await? {
            facts.actions.push(UserAction { user: user.id, at: session.created_at });
        }
    }
    Ok(facts)
}

const INBOUND: RGBColor = RGBColor(11, 92, 173);
const OUTBOUND: RGBColor = RGBColor(26, 127, 55);

/// Inbound and outbound messages per day as two lines (labels and values
/// are in the table beside it, so the SVG holds shapes only).
pub(super) fn messages_chart(days: &[(NaiveDate, usize, usize)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 240)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let top = days.iter().map(|(_, i, o)| (*i).max(*o)).max().unwrap_or(0).max(1);
        let last = days.len().saturating_sub(1).max(1);
        if let Ok(mut chart) = ChartBuilder::on(&root).margin(12).build_cartesian_2d(0..last, 0..top) {
            for (colour, pick) in [(INBOUND, 0usize), (OUTBOUND, 1usize)] {
                let points: Vec<(usize, usize)> =
                    days.iter().enumerate().map(|(x, (_, i, o))| (x, if pick == 0 { *i } else { *o })).collect();
                let _ = chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)));
                let _ = chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())));
            }
        }
        let _ = root.present();
    }
    svg
}

/// One horizontal bar per stage, in funnel order.
pub(super) fn funnel_chart(stages: &[(LeadStage, usize)]) -> String {
    let mut svg = String::new();
    {
        let (width, bar, gap) = (640i32, 26i32, 8i32);
        let height = (bar + gap) * i32::try_from(stages.len()).unwrap_or(0) + gap;
        let root = SVGBackend::with_string(&mut svg, (640, u32::try_from(height).unwrap_or(1))).into_drawing_area();
        let _ = root.fill(&WHITE);
        let top = stages.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
        for (row, (stage, n)) in (0i32..).zip(stages) {
            let y = gap + row * (bar + gap);
            let len = i32::try_from(*n * (width as usize - 24) / top).unwrap_or(0).max(2);
            let colour = if *stage == LeadStage::Won { OUTBOUND } else { INBOUND };
            let _ = root.draw(&Rectangle::new([(12, y), (12 + len, y + bar)], colour.filled()));
        }
        let _ = root.present();
    }
    svg
}

/// A duration given in minutes, for people: minutes, or hours and minutes from an hour up.
pub(super) fn minutes(m: f64, unit: &str) -> String {
    if m < 60.0 {
        format!("{m:.1} {unit}")
    } else {
        let whole = m.round() as i64;
        format!("{}h{:02}", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_one_shape_per_value() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let svg = messages_chart(&[(day, 1, 2), (day.succ_opt().unwrap(), 3, 0)]);
        assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 4);
        let svg = funnel_chart(&[(LeadStage::New, 4), (LeadStage::Won, 1)]);
        assert_eq!(svg.matches("<rect").count(), 3, "background and two bars: {svg}");
        // Empty data draws, it does not divide by zero.
        assert!(messages_chart(&[]).starts_with("<svg"));
        assert!(funnel_chart(&[]).starts_with("<svg"));
    }

    #[test]
    fn durations_read_in_minutes_then_hours() {
        assert_eq!(minutes(1.5, "min"), "1.5 min");
        assert_eq!(minutes(125.0, "min"), "2h05");
    }
}
