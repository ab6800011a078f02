//! Sequences: the [`SequenceStore`](crate::SequenceStore) contract.

use serde_json::json;
use std::future::Future;
use std::sync::Arc;

use super::{contact, ev, event_count, insert, is_conflict, is_not_found, new_account, now, phone};
use crate::ports::sequences::{Enrolling, EnrolmentQuery};
use crate::{
    AccountId, ContactId, Enrolment, EnrolmentState, EventType, Job, LeadStage, NewSequence, PageRequest, SendWindow,
    Sequence, SequenceStep, StepAction, StopReason, Store,
};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    sequence_roundtrip_update_delete_and_tenancy(make().await).await;
    enrol_skips_active_duplicates_and_schedules_jobs(make().await).await;
    enrolment_updates_are_optimistic_and_atomic(make().await).await;
}

fn sequence(account: AccountId) -> Sequence {
    let input = NewSequence {
        name: "Follow-up".into(),
        enabled: true,
        steps: vec![
            SequenceStep {
                delay_seconds: 3 * 86400,
                action: StepAction::SendTemplate {
                    name: "follow_up_a".into(),
                    language: "pt_BR".into(),
                    variables: [("offer".to_owned(), "10%".to_owned())].into(),
                },
            },
            SequenceStep { delay_seconds: 7 * 86400, action: StepAction::AddTag { tag: "cold".into() } },
            SequenceStep { delay_seconds: 0, action: StepAction::SetStage { stage: LeadStage::Lost } },
        ],
        window: Some(SendWindow {
            time_zone: Some("America/Sao_Paulo".into()),
            utc_offset_minutes: 0,
            days: vec![1, 2, 3, 4, 5],
            start_minute: 540,
            end_minute: 1080,
        }),
        late: crate::domain::sequence::LatePolicy {
            grace_seconds: 3600,
            action: crate::domain::sequence::LateAction::Stop,
        },
    };
    Sequence::new(account, input, now()).expect("valid sequence")
}

async fn stored(store: &Arc<dyn Store>, account: AccountId) -> Sequence {
    let s = sequence(account);
    store.insert_sequence(&s, &ev(account, EventType::SEQUENCE_CREATED)).await.expect("[fixture] insert_sequence");
    s
}

fn step_job(e: &Enrolment, step: u32) -> Job {
    Job::new("sequence.step", Some(e.account_id), json!({ "enrolment_id": e.id, "step": step }), now(), now())
        .and_then(|j| j.with_unique_key(format!("{}:{step}", e.id)))
        .expect("valid job")
}

fn enrolling(s: &Sequence, contact: ContactId) -> Enrolling {
    let mut enrolment = Enrolment::new(s, contact, LeadStage::New, now(), now());
    enrolment.source = Some(json!({ "automation_id": "a" }));
    Enrolling { job: step_job(&enrolment, 0), event: ev(s.account_id, EventType::SEQUENCE_ENROLLED), enrolment }
}

fn all(page: u32) -> EnrolmentQuery {
    EnrolmentQuery { page: PageRequest::first(page).expect("limit"), ..Default::default() }
}

/// Every field round-trips; another account's sequence is missing; lists
/// page in id order; an update is a compare-and-set on `version`; a delete
/// removes the sequence and its enrolments.
pub async fn sequence_roundtrip_update_delete_and_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let s = stored(&store, a).await;
    assert_eq!(store.get_sequence(a, s.id).await.expect("[sequences] get"), s, "[sequences] round trip");
    assert!(is_not_found(&store.get_sequence(b, s.id).await.expect_err("[sequences] tenancy")));
    let dup = store.insert_sequence(&s, &ev(a, EventType::SEQUENCE_CREATED)).await;
    assert!(is_conflict(&dup.expect_err("[sequences] taken id")), "[sequences] taken id is Conflict");
    let s2 = stored(&store, a).await;
    let first = store.list_sequences(a, &PageRequest::first(1).expect("limit")).await.expect("[sequences] list");
    assert_eq!(first.items.iter().map(|x| x.id).collect::<Vec<_>>(), vec![s.id], "[sequences] first page");
    let cursor = first.next_cursor.expect("[sequences] a second page");
    let second = store.list_sequences(a, &PageRequest::new(Some(&cursor), 10).expect("cursor")).await.expect("list");
    assert_eq!(second.items.iter().map(|x| x.id).collect::<Vec<_>>(), vec![s2.id], "[sequences] second page");
    assert!(store.list_sequences(b, &PageRequest::first(10).expect("limit")).await.expect("list").items.is_empty());

    let mut edited = s.clone();
    edited.name = "Renamed".into();
    edited.enabled = false;
    edited.window = None;
    edited.steps.truncate(1);
    let before = event_count(&store, a).await;
    let saved = store.update_sequence(&edited, &ev(a, EventType::SEQUENCE_UPDATED)).await.expect("[sequences] update");
    assert_eq!(saved.version, 1, "[sequences] version moves");
    assert_eq!(
        (saved.name.as_str(), saved.enabled, saved.window.clone(), saved.steps.len()),
        ("Renamed", false, None, 1)
    );
    assert_eq!(store.get_sequence(a, s.id).await.expect("get"), saved, "[sequences] stored as returned");
    let stale = store.update_sequence(&edited, &ev(a, EventType::SEQUENCE_UPDATED)).await;
    assert!(is_conflict(&stale.expect_err("[sequences] stale version")), "[sequences] stale update is Conflict");
    let mut other = saved.clone();
    other.account_id = b;
    let foreign = store.update_sequence(&other, &ev(b, EventType::SEQUENCE_UPDATED)).await;
    assert!(is_not_found(&foreign.expect_err("[sequences] foreign update")));
    assert_eq!(event_count(&store, a).await, before + 1, "[sequences] one event per accepted update");

    let c = contact(a, "Ana", &phone(1));
    insert(&store, &c).await;
    let item = enrolling(&saved, c.id);
    assert_eq!(store.enrol(a, std::slice::from_ref(&item)).await.expect("[sequences] enrol"), vec![true]);
    let gone = store.delete_sequence(b, s.id, &ev(b, EventType::SEQUENCE_DELETED)).await;
    assert!(is_not_found(&gone.expect_err("[sequences] foreign delete")));
    store.delete_sequence(a, s.id, &ev(a, EventType::SEQUENCE_DELETED)).await.expect("[sequences] delete");
    assert!(is_not_found(&store.get_sequence(a, s.id).await.expect_err("[sequences] deleted")));
    let e = store.get_enrolment(a, item.enrolment.id).await;
    assert!(is_not_found(&e.expect_err("[sequences] enrolments go with their sequence")));
    let again = store.delete_sequence(a, s.id, &ev(a, EventType::SEQUENCE_DELETED)).await;
    assert!(is_not_found(&again.expect_err("[sequences] delete twice")));
}

/// `enrol` stores each new enrolment with its job and event, skips a
/// contact already active in the sequence (in the store or earlier in the
/// batch), and refuses a missing sequence without storing anything.
pub async fn enrol_skips_active_duplicates_and_schedules_jobs(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let s = stored(&store, a).await;
    let other = stored(&store, a).await;
    let (c1, c2) = (contact(a, "Ana", &phone(1)), contact(a, "Bia", &phone(2)));
    insert(&store, &c1).await;
    insert(&store, &c2).await;
    let before = event_count(&store, a).await;
    let batch = [enrolling(&s, c1.id), enrolling(&s, c2.id), enrolling(&s, c1.id), enrolling(&other, c1.id)];
    let stored_flags = store.enrol(a, &batch).await.expect("[enrol] batch");
    assert_eq!(stored_flags, vec![true, true, false, true], "[enrol] a contact is active once per sequence");
    assert_eq!(event_count(&store, a).await, before + 3, "[enrol] one event per stored enrolment");
    for (item, kept) in batch.iter().zip(&stored_flags) {
        let job = store.get_job(a, item.job.id).await;
        let enrolment = store.get_enrolment(a, item.enrolment.id).await;
        if *kept {
            assert_eq!(job.expect("[enrol] its job is scheduled"), item.job);
            assert_eq!(enrolment.expect("[enrol] stored"), item.enrolment, "[enrol] round trip");
        } else {
            assert!(is_not_found(&job.expect_err("[enrol] a skipped enrolment schedules no job")));
            assert!(is_not_found(&enrolment.expect_err("[enrol] a skipped enrolment is not stored")));
        }
    }
    assert!(is_not_found(&store.get_enrolment(b, batch[0].enrolment.id).await.expect_err("[enrol] tenancy")));
    let again = store.enrol(a, &[enrolling(&s, c1.id)]).await.expect("[enrol] again");
    assert_eq!(again, vec![false], "[enrol] still active");

    // Once stopped, the contact may be enrolled again.
    let mut first = store.get_enrolment(a, batch[0].enrolment.id).await.expect("get");
    first.stop(StopReason::Manual, None, now());
    store.update_enrolment(&first, Some(&ev(a, EventType::SEQUENCE_STOPPED)), None).await.expect("[enrol] stop");
    assert_eq!(store.enrol(a, &[enrolling(&s, c1.id)]).await.expect("[enrol] re-enrol"), vec![true]);

    // A missing sequence stores nothing; a foreign enrolment is refused.
    let c3 = contact(a, "Cid", &phone(3));
    insert(&store, &c3).await;
    let before = event_count(&store, a).await;
    let missing = store.enrol(a, &[enrolling(&s, c3.id), enrolling(&sequence(a), c3.id)]).await;
    assert!(is_not_found(&missing.expect_err("[enrol] missing sequence")), "[enrol] a missing sequence is NotFound");
    assert_eq!(event_count(&store, a).await, before, "[enrol] nothing stored from a refused batch");
    let foreign = store.enrol(a, &[enrolling(&sequence(b), c3.id)]).await;
    assert!(matches!(foreign, Err(crate::Error::Validation { .. })), "[enrol] another account's enrolment");
    let q = EnrolmentQuery { contact: Some(c3.id), ..all(10) };
    assert!(store.list_enrolments(a, &q).await.expect("list").items.is_empty(), "[enrol] rolled back");

    // Filters.
    let listed = store.list_enrolments(a, &all(100)).await.expect("list").items;
    assert_eq!(listed.len(), 4, "[enrol] every stored enrolment is listed");
    assert!(listed.windows(2).all(|w| w[0].id < w[1].id), "[enrol] in id order");
    let q = EnrolmentQuery { sequence: Some(s.id), contact: Some(c1.id), ..all(100) };
    assert_eq!(store.list_enrolments(a, &q).await.expect("list").items.len(), 2, "[enrol] by sequence and contact");
    let q = EnrolmentQuery { state: Some(EnrolmentState::Stopped), ..all(100) };
    let stopped = store.list_enrolments(a, &q).await.expect("list").items;
    assert_eq!(stopped.len(), 1, "[enrol] by state");
    assert_eq!(stopped[0].stop_reason, Some(StopReason::Manual));
    let q = EnrolmentQuery { sequence: Some(other.id), ..all(1) };
    assert_eq!(store.list_enrolments(a, &q).await.expect("list").items.len(), 1);
    assert!(store.list_enrolments(b, &all(100)).await.expect("list").items.is_empty(), "[enrol] tenancy in lists");
}

/// `update_enrolment` stores the enrolment, its event and the next job
/// together, only from the current version; a refused update writes none
/// of them; a finished enrolment does not become active again.
pub async fn enrolment_updates_are_optimistic_and_atomic(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let s = stored(&store, a).await;
    let c = contact(a, "Ana", &phone(1));
    insert(&store, &c).await;
    let item = enrolling(&s, c.id);
    store.enrol(a, std::slice::from_ref(&item)).await.expect("[update] enrol");
    let mut e = item.enrolment.clone();
    e.current_step = 1;
    e.next_run_at = Some(now());
    e.stage = LeadStage::Contacted;
    let next = step_job(&e, 1);
    let before = event_count(&store, a).await;
    let saved = store
        .update_enrolment(&e, Some(&ev(a, EventType::SEQUENCE_STEP_COMPLETED)), Some(&next))
        .await
        .expect("[update] advance");
    assert_eq!((saved.version, saved.current_step, saved.stage), (1, 1, LeadStage::Contacted), "[update] stored");
    assert_eq!(saved.source, item.enrolment.source, "[update] the source stays");
    assert_eq!(store.get_job(a, next.id).await.expect("[update] next job scheduled"), next);
    assert_eq!(event_count(&store, a).await, before + 1);

    // Stale: nothing written (no event, no job).
    let mut stale = e.clone();
    stale.current_step = 2;
    let stale_job = step_job(&stale, 2);
    let r = store.update_enrolment(&stale, Some(&ev(a, EventType::SEQUENCE_STEP_COMPLETED)), Some(&stale_job)).await;
    assert!(is_conflict(&r.expect_err("[update] stale")), "[update] stale version is Conflict");
    assert!(is_not_found(&store.get_job(a, stale_job.id).await.expect_err("[update] no job from a refused update")));
    assert_eq!(event_count(&store, a).await, before + 1, "[update] no event from a refused update");

    // A taken unique key: the enrolment does not move either.
    let mut clash = saved.clone();
    clash.current_step = 2;
    let mut dup = step_job(&saved, 1);
    dup.id = crate::JobId::new();
    let r = store.update_enrolment(&clash, Some(&ev(a, EventType::SEQUENCE_STEP_COMPLETED)), Some(&dup)).await;
    assert!(is_conflict(&r.expect_err("[update] job key taken")), "[update] a taken job key is Conflict");
    assert_eq!(store.get_enrolment(a, e.id).await.expect("get").current_step, 1, "[update] rolled back");

    // Finish, then try to reactivate.
    let mut done = saved.clone();
    done.state = EnrolmentState::Completed;
    done.next_run_at = None;
    let done = store.update_enrolment(&done, Some(&ev(a, EventType::SEQUENCE_COMPLETED)), None).await.expect("done");
    assert_eq!(done.state, EnrolmentState::Completed);
    let mut back = done.clone();
    back.state = EnrolmentState::Active;
    let r = store.update_enrolment(&back, None, None).await;
    assert!(is_conflict(&r.expect_err("[update] reactivate")), "[update] a finished enrolment stays finished");

    let mut missing = done.clone();
    missing.id = crate::EnrolmentId::new();
    assert!(is_not_found(&store.update_enrolment(&missing, None, None).await.expect_err("[update] missing")));
    let mut foreign_event = done.clone();
    foreign_event.state = EnrolmentState::Stopped;
    let r =
        store.update_enrolment(&foreign_event, Some(&ev(AccountId::new(), EventType::SEQUENCE_STOPPED)), None).await;
    assert!(matches!(r, Err(crate::Error::Validation { .. })), "[update] a foreign event is refused");
}
