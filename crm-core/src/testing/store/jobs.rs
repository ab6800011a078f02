//! Durable jobs: the [`JobStore`](crate::JobStore) contract — scheduling,
//! unique keys, claims with exclusive leases, settlements, dead jobs and
//! replays, tenancy and statistics.

use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{is_conflict, is_not_found, new_account, now};
use crate::ports::store::MAX_NACK_ERROR_CHARS;
use crate::{AccountId, Error, Job, JobClaim, JobId, JobQuery, JobState, PageRequest, QueueStats, Store};

/// Runs every behaviour of this section, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    jobs_schedule_get_list_cancel(make().await).await;
    jobs_unique_keys(make().await).await;
    jobs_claim_only_due_jobs_earliest_first(make().await).await;
    jobs_concurrent_claims_never_overlap(make().await).await;
    jobs_lease_expiry(make().await).await;
    jobs_complete_many_settles_what_it_holds(make().await).await;
    jobs_renew_extends_the_lease(make().await).await;
    jobs_retry_and_release(make().await).await;
    jobs_bury_and_replay(make().await).await;
    jobs_tenancy(make().await).await;
    jobs_stats(make().await).await;
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

fn job(kind: &str, account: Option<AccountId>, run_at: DateTime<Utc>) -> Job {
    Job::new(kind, account, json!({ "to": "+5511987654321", "n": [1, 2] }), run_at, now()).expect("valid job")
}

async fn schedule(store: &Arc<dyn Store>, j: &Job) {
    store.schedule_job(j).await.unwrap_or_else(|e| panic!("[fixture] schedule_job: {e}"));
}

async fn claim(store: &Arc<dyn Store>, kinds: &[&str], limit: u32, lease: Duration) -> Vec<JobClaim> {
    let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
    store.claim_jobs(&kinds, limit, lease).await.expect("claim_jobs")
}

async fn claim_one(store: &Arc<dyn Store>, kind: &str, lease: Duration) -> JobClaim {
    let mut got = claim(store, &[kind], 1, lease).await;
    assert_eq!(got.len(), 1, "[jobs] one {kind} job claimable");
    got.remove(0)
}

fn jobs_query(kind: Option<&str>, state: Option<JobState>, page: PageRequest) -> JobQuery {
    JobQuery { kind: kind.map(str::to_owned), state, page }
}

async fn all_jobs(store: &Arc<dyn Store>, account: AccountId, kind: Option<&str>, state: Option<JobState>) -> Vec<Job> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(2).expect("limit");
    loop {
        let got = store.list_jobs(account, &jobs_query(kind, state, page)).await.expect("list_jobs");
        out.extend(got.items);
        match got.next_cursor {
            Some(c) => page = PageRequest::new(Some(&c), 2).expect("cursor"),
            None => return out,
        }
    }
}

/// Scheduled jobs read back exactly, list by kind and state in id order with
/// pages, and are removed by `cancel_job`, which refuses a leased job.
pub async fn jobs_schedule_get_list_cancel(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let later = now() + secs(3600);
    let send = job("send", Some(a), later).with_unique_key("campaign-1/contact-1").expect("key");
    let follow = job("follow_up", Some(a), later);
    let send2 = job("send", Some(a), now() - secs(1));
    for j in [&send, &follow, &send2] {
        schedule(&store, j).await;
    }
    schedule(&store, &job("send", None, later)).await;
    let got = store.get_job(a, send.id).await.expect("get_job");
    assert_eq!(got, send, "[jobs] a job reads back exactly (payload, key, times, state)");
    assert_eq!(got.state, JobState::Scheduled, "[jobs] scheduled");
    let err = store.schedule_job(&send2).await.expect_err("same id");
    assert!(is_conflict(&err), "[jobs] a taken id is Conflict, got {err}");
    let mut bad = job("send", Some(a), later);
    bad.kind = "Bad Kind".into();
    let err = store.schedule_job(&bad).await.expect_err("bad kind");
    assert!(matches!(err, Error::Validation { .. }), "[jobs] the kind is checked, got {err}");
    let mut big = job("send", Some(a), later);
    big.payload = json!({ "blob": "x".repeat(crate::ports::jobs::MAX_JOB_PAYLOAD_BYTES) });
    let err = store.schedule_job(&big).await.expect_err("payload too big");
    assert!(matches!(err, Error::Validation { .. }), "[jobs] the payload size is checked, got {err}");

    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(ids(all_jobs(&store, a, None, None).await), [send.id, follow.id, send2.id], "[jobs] list in id order");
    assert_eq!(ids(all_jobs(&store, a, Some("send"), None).await), [send.id, send2.id], "[jobs] list by kind");
    assert!(all_jobs(&store, a, None, Some(JobState::Dead)).await.is_empty(), "[jobs] list by state");
    let first = store.list_jobs(a, &jobs_query(None, None, PageRequest::first(2).expect("l"))).await.expect("list");
    assert_eq!(first.items.len(), 2, "[jobs] page limit");
    assert!(first.next_cursor.is_some(), "[jobs] a next page");

    store.cancel_job(a, follow.id).await.expect("cancel");
    assert!(is_not_found(&store.get_job(a, follow.id).await.expect_err("gone")), "[jobs] cancelled jobs are gone");
    let err = store.cancel_job(a, follow.id).await.expect_err("cancel twice");
    assert!(is_not_found(&err), "[jobs] cancelling a missing job is NotFound, got {err}");

    let held = claim_one(&store, "send", Duration::from_millis(150)).await;
    assert_eq!(held.job.id, send2.id, "[jobs] the due one");
    let err = store.cancel_job(a, send2.id).await.expect_err("leased");
    assert!(is_conflict(&err), "[jobs] cancelling a job a worker holds is Conflict, got {err}");
    tokio::time::sleep(Duration::from_millis(350)).await;
    store.cancel_job(a, send2.id).await.expect("cancel once the lease expired");
    let err = store.complete_job(&held.token).await.expect_err("cancelled");
    assert!(is_not_found(&err), "[jobs] completing a cancelled job is NotFound, got {err}");
}

/// A unique key is held per kind while its job is scheduled or dead, and
/// free once the job completed or was cancelled.
pub async fn jobs_unique_keys(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let keyed = |kind: &str| job(kind, Some(a), now() - secs(1)).with_unique_key("k-1").expect("key");
    let first = keyed("send");
    schedule(&store, &first).await;
    let err = store.schedule_job(&keyed("send")).await.expect_err("held");
    assert!(is_conflict(&err), "[jobs] a scheduled job holds its key, got {err}");
    schedule(&store, &keyed("remind")).await;
    schedule(&store, &job("send", Some(a), now())).await;
    schedule(&store, &job("send", Some(a), now())).await;

    let c = claim(&store, &["send"], 10, Duration::from_secs(30)).await;
    let mine = c.iter().find(|c| c.job.id == first.id).expect("claimed");
    store.bury_job(&mine.token, "fatal").await.expect("bury");
    let err = store.schedule_job(&keyed("send")).await.expect_err("held while dead");
    assert!(is_conflict(&err), "[jobs] a dead job holds its key, got {err}");
    let replayed = store.replay_job(a, first.id).await.expect("replay");
    let again = claim_one(&store, "send", Duration::from_secs(30)).await;
    assert_eq!(again.job.id, replayed.id, "[jobs] replayed");
    store.complete_job(&again.token).await.expect("complete");
    let next = keyed("send");
    schedule(&store, &next).await;
    store.cancel_job(a, next.id).await.expect("cancel");
    schedule(&store, &keyed("send")).await;
}

/// Claims take only due, scheduled, unleased jobs of the given kinds,
/// earliest `run_at` first, counting the attempt.
pub async fn jobs_claim_only_due_jobs_earliest_first(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let t = now();
    let j3 = job("send", Some(a), t - secs(3));
    let j1 = job("send", Some(a), t - secs(1));
    let j2 = job("send", Some(a), t - secs(2));
    let future = job("send", Some(a), t + secs(3600));
    let other = job("other", Some(a), t - secs(10));
    let system = job("send", None, t - secs(5));
    for j in [&j3, &j1, &j2, &future, &other, &system] {
        schedule(&store, j).await;
    }
    let first = claim(&store, &["send"], 1, Duration::from_secs(30)).await;
    assert_eq!(first.len(), 1, "[jobs] claim respects its limit");
    assert_eq!(first[0].job.id, system.id, "[jobs] the earliest run_at first (system jobs too)");
    let rest = claim(&store, &["send"], 10, Duration::from_secs(30)).await;
    let got: Vec<JobId> = rest.iter().map(|c| c.job.id).collect();
    assert_eq!(got, [j3.id, j2.id, j1.id], "[jobs] due jobs by run_at; not the future one, not another kind");
    assert!(rest.iter().all(|c| c.job.attempt == 1), "[jobs] a claim counts the attempt");
    assert_eq!(rest[0].job.payload, j3.payload, "[jobs] the claim carries the job");
    assert_eq!(rest[0].job.account_id, Some(a), "[jobs] and its account");
    assert!(claim(&store, &["send"], 10, Duration::from_secs(30)).await.is_empty(), "[jobs] leased jobs wait");
    let both = claim(&store, &["send", "other"], 10, Duration::from_secs(30)).await;
    assert_eq!(both.len(), 1, "[jobs] several kinds at once");
    assert_eq!(both[0].job.id, other.id, "[jobs] the other kind's job");
    assert!(claim(&store, &[], 10, Duration::from_secs(30)).await.is_empty(), "[jobs] no kinds, no jobs");
    for (limit, kinds) in
        [(0, vec!["send".to_owned()]), (1001, vec!["send".to_owned()]), (1, vec!["Bad Kind".to_owned()])]
    {
        let err = store.claim_jobs(&kinds, limit, Duration::from_secs(1)).await.expect_err("refused");
        assert!(matches!(err, Error::Validation { .. }), "[jobs] claim arguments are checked, got {err}");
    }
    let err = store.job_stats("Bad Kind").await.expect_err("refused");
    assert!(matches!(err, Error::Validation { .. }), "[jobs] the stats kind is checked, got {err}");
}

/// Many workers claiming at once never receive the same job.
pub async fn jobs_concurrent_claims_never_overlap(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let t = now();
    for i in 0..90 {
        schedule(&store, &job("send", Some(a), t - chrono::Duration::milliseconds(i))).await;
    }
    let mut workers = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = claim(&store, &["send"], 4, Duration::from_secs(60)).await;
                if batch.is_empty() {
                    return got;
                }
                for c in batch {
                    got.push(c.job.id);
                    store.complete_job(&c.token).await.expect("complete with own lease");
                }
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "[jobs] no job handed out twice");
    assert_eq!(all.len(), 90, "[jobs] every job ran");
    assert_eq!(store.job_stats("send").await.expect("stats"), QueueStats::default(), "[jobs] all done");
}

/// Completing a batch removes the jobs whose leases it holds and reports,
/// per token, which ones; a stale, spent or dead token is `false` and does
/// not stop the others.
pub async fn jobs_complete_many_settles_what_it_holds(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    assert!(store.complete_jobs(&[]).await.expect("empty").is_empty(), "[jobs] an empty batch is a no-op");
    let jobs: Vec<Job> = (0..4).map(|i| job("batch", Some(a), now() - secs(10 - i))).collect();
    for j in &jobs {
        schedule(&store, j).await;
    }
    let stale = claim_one(&store, "batch", Duration::from_millis(100)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = claim(&store, &["batch"], 10, Duration::from_secs(30)).await;
    assert_eq!(held.len(), 4, "[jobs] the expired job is claimed again with the rest");
    store.bury_job(&held[3].token, "dead").await.expect("bury");
    store.complete_job(&held[2].token).await.expect("complete one alone");
    let tokens = vec![
        held[0].token.clone(),
        stale.token.clone(),
        held[1].token.clone(),
        held[2].token.clone(),
        held[3].token.clone(),
    ];
    let done = store.complete_jobs(&tokens).await.expect("complete_jobs");
    assert_eq!(
        done,
        vec![true, false, true, false, false],
        "[jobs] per token: held, stale lease, held, already done, dead"
    );
    for c in &held[..3] {
        assert!(
            is_not_found(&store.get_job(a, c.job.id).await.expect_err("gone")),
            "[jobs] completed jobs are removed"
        );
    }
    let dead = store.get_job(a, held[3].job.id).await.expect("a dead job stays");
    assert_eq!(dead.state, JobState::Dead, "[jobs] a batch never removes a dead job");
}

/// An expired lease hands the job out again with a new lease; the old
/// holder's calls are refused.
pub async fn jobs_lease_expiry(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let j = job("send", Some(a), now() - secs(1));
    schedule(&store, &j).await;
    let first = claim_one(&store, "send", Duration::from_millis(100)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = claim_one(&store, "send", Duration::from_secs(30)).await;
    assert_eq!(second.job.id, j.id, "[jobs] the same job again");
    assert_eq!(second.job.attempt, 2, "[jobs] attempt counts claims");
    assert_ne!(second.token.lease_id, first.token.lease_id, "[jobs] a new lease id");
    for (what, err) in [
        ("complete", store.complete_job(&first.token).await.expect_err("stale")),
        ("renew", store.renew_job(&first.token, Duration::from_secs(1)).await.expect_err("stale")),
        ("retry", store.retry_job(&first.token, Duration::ZERO, "x").await.expect_err("stale")),
        ("release", store.release_job(&first.token, Duration::ZERO).await.expect_err("stale")),
        ("bury", store.bury_job(&first.token, "x").await.expect_err("stale")),
    ] {
        assert!(is_conflict(&err), "[jobs] the old holder cannot {what}, got {err}");
    }
    store.complete_job(&second.token).await.expect("complete with the current lease");
    assert!(is_not_found(&store.get_job(a, j.id).await.expect_err("done")), "[jobs] completed jobs are removed");
    let err = store.complete_job(&second.token).await.expect_err("twice");
    assert!(is_not_found(&err), "[jobs] completing a gone job is NotFound, got {err}");
    let err = store.renew_job(&first.token, Duration::from_secs(1)).await.expect_err("gone");
    assert!(is_not_found(&err), "[jobs] renewing a gone job is NotFound, got {err}");
}

/// `renew_job` keeps a job leased past its first expiry.
pub async fn jobs_renew_extends_the_lease(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    schedule(&store, &job("send", Some(a), now() - secs(1))).await;
    let held = claim_one(&store, "send", Duration::from_millis(150)).await;
    store.renew_job(&held.token, Duration::from_secs(30)).await.expect("renew");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        claim(&store, &["send"], 10, Duration::from_secs(30)).await.is_empty(),
        "[jobs] a renewed lease outlives its first expiry"
    );
    store.complete_job(&held.token).await.expect("complete after renewing");
}

/// `retry_job` records the error and moves the run time; `release_job`
/// moves it without counting the attempt (the error stays).
pub async fn jobs_retry_and_release(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let j = job("send", Some(a), now() - secs(1));
    schedule(&store, &j).await;
    let first = claim_one(&store, "send", Duration::from_secs(30)).await;
    let long = "x".repeat(MAX_NACK_ERROR_CHARS + 10);
    // A delay long enough that a loaded machine's next statements run within it.
    store.retry_job(&first.token, Duration::from_millis(1500), &long).await.expect("retry");
    let stored = store.get_job(a, j.id).await.expect("get");
    assert_eq!(stored.last_error.as_deref().map(str::len), Some(MAX_NACK_ERROR_CHARS), "[jobs] error kept, clipped");
    assert!(stored.run_at > j.run_at, "[jobs] run_at moved by the retry");
    assert_eq!(stored.attempt, 1, "[jobs] one attempt so far");
    assert!(claim(&store, &["send"], 10, Duration::from_secs(30)).await.is_empty(), "[jobs] not due before its delay");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let second = claim_one(&store, "send", Duration::from_secs(30)).await;
    assert_eq!(second.job.attempt, 2, "[jobs] the second attempt");
    assert_eq!(second.job.last_error, stored.last_error, "[jobs] the claim carries the last error");
    store.release_job(&second.token, Duration::ZERO).await.expect("release");
    let third = claim_one(&store, "send", Duration::from_secs(30)).await;
    assert_eq!(third.job.attempt, 2, "[jobs] a release does not count the attempt");
    assert_eq!(third.job.last_error, stored.last_error, "[jobs] a release keeps the last error");
    store.release_job(&third.token, Duration::from_secs(3600)).await.expect("release for later");
    assert!(claim(&store, &["send"], 10, Duration::from_secs(30)).await.is_empty(), "[jobs] released for later");
    assert_eq!(store.get_job(a, j.id).await.expect("get").state, JobState::Scheduled, "[jobs] still scheduled");
}

/// `bury_job` makes a job dead (kept, listed, never claimed);
/// `replay_job` schedules it again, due now with its attempts reset.
pub async fn jobs_bury_and_replay(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let j = job("send", Some(a), now() - secs(1));
    schedule(&store, &j).await;
    let live = job("send", Some(a), now() + secs(3600));
    schedule(&store, &live).await;
    let held = claim_one(&store, "send", Duration::from_secs(30)).await;
    store.bury_job(&held.token, "template rejected").await.expect("bury");
    let dead = store.get_job(a, j.id).await.expect("kept");
    assert_eq!(dead.state, JobState::Dead, "[jobs] dead");
    assert_eq!(dead.last_error.as_deref(), Some("template rejected"), "[jobs] with its error");
    assert_eq!(dead.attempt, 1, "[jobs] and its attempts");
    let listed = all_jobs(&store, a, None, Some(JobState::Dead)).await;
    assert_eq!(listed, std::slice::from_ref(&dead), "[jobs] listed as dead");
    let scheduled = all_jobs(&store, a, None, Some(JobState::Scheduled)).await;
    assert_eq!(scheduled, std::slice::from_ref(&live), "[jobs] scheduled ones");
    assert!(claim(&store, &["send"], 10, Duration::ZERO).await.is_empty(), "[jobs] dead jobs are never claimed");
    for (what, err) in [
        ("complete", store.complete_job(&held.token).await.expect_err("dead")),
        ("renew", store.renew_job(&held.token, Duration::from_secs(1)).await.expect_err("dead")),
        ("retry", store.retry_job(&held.token, Duration::ZERO, "x").await.expect_err("dead")),
    ] {
        assert!(is_not_found(&err), "[jobs] {what} of a dead job is NotFound, got {err}");
    }
    let err = store.replay_job(a, live.id).await.expect_err("not dead");
    assert!(is_not_found(&err), "[jobs] replaying a scheduled job is NotFound, got {err}");
    let before = now();
    let replayed = store.replay_job(a, j.id).await.expect("replay");
    assert_eq!(replayed.state, JobState::Scheduled, "[jobs] scheduled again");
    assert_eq!(replayed.attempt, 0, "[jobs] attempts reset");
    assert_eq!(replayed.last_error.as_deref(), Some("template rejected"), "[jobs] the last error is kept");
    assert!(replayed.run_at >= before - secs(5), "[jobs] due now: {replayed:?}");
    assert_eq!(store.get_job(a, j.id).await.expect("get"), replayed, "[jobs] replay returns the stored job");
    let again = claim_one(&store, "send", Duration::from_secs(30)).await;
    assert_eq!((again.job.id, again.job.attempt), (j.id, 1), "[jobs] claimable at once, first attempt again");
    store.bury_job(&again.token, "still broken").await.expect("bury again");
    store.cancel_job(a, j.id).await.expect("a dead job can be cancelled");
    assert!(is_not_found(&store.get_job(a, j.id).await.expect_err("gone")), "[jobs] cancelled");
}

/// Another account's job (or a system job) behaves as a missing one.
pub async fn jobs_tenancy(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    let b = new_account(&store, "B").await;
    let theirs = job("send", Some(b), now() - secs(1));
    schedule(&store, &theirs).await;
    let system = job("send", None, now() + secs(3600));
    schedule(&store, &system).await;
    for id in [theirs.id, system.id] {
        assert!(is_not_found(&store.get_job(a, id).await.expect_err("get")), "[jobs] get is NotFound");
        assert!(is_not_found(&store.cancel_job(a, id).await.expect_err("cancel")), "[jobs] cancel is NotFound");
    }
    assert!(all_jobs(&store, a, None, None).await.is_empty(), "[jobs] list shows only the account's jobs");
    assert_eq!(all_jobs(&store, b, None, None).await, std::slice::from_ref(&theirs), "[jobs] B sees its job");
    let held = claim_one(&store, "send", Duration::from_secs(30)).await;
    store.bury_job(&held.token, "fatal").await.expect("bury");
    let err = store.replay_job(a, theirs.id).await.expect_err("replay");
    assert!(is_not_found(&err), "[jobs] replaying another account's dead job is NotFound, got {err}");
    assert!(all_jobs(&store, a, None, Some(JobState::Dead)).await.is_empty(), "[jobs] A has no dead jobs");
    store.replay_job(b, theirs.id).await.expect("B replays its own");
}

/// `job_stats`: depth (not dead), due (now, unleased), the oldest due
/// job's run time, and dead jobs — per kind.
pub async fn jobs_stats(store: Arc<dyn Store>) {
    let a = new_account(&store, "A").await;
    assert_eq!(store.job_stats("send").await.expect("stats"), QueueStats::default(), "[jobs] an empty kind");
    let t = now();
    let j1 = job("send", Some(a), t - secs(30));
    let j2 = job("send", Some(a), t - secs(20));
    let j3 = job("send", Some(a), t - secs(10));
    let future = job("send", None, t + secs(3600));
    let other = job("other", Some(a), t - secs(60));
    for j in [&j1, &j2, &j3, &future, &other] {
        schedule(&store, j).await;
    }
    let stats = |depth, due, oldest: Option<&Job>, dead| QueueStats {
        depth,
        due,
        oldest_due_at: oldest.map(|j| j.run_at),
        dead,
    };
    assert_eq!(store.job_stats("send").await.expect("stats"), stats(4, 3, Some(&j1), 0), "[jobs] three due of four");
    let first = claim_one(&store, "send", Duration::from_secs(30)).await;
    assert_eq!(first.job.id, j1.id, "[jobs] the oldest");
    assert_eq!(
        store.job_stats("send").await.expect("stats"),
        stats(4, 2, Some(&j2), 0),
        "[jobs] a leased job is not due"
    );
    store.bury_job(&first.token, "fatal").await.expect("bury");
    assert_eq!(
        store.job_stats("send").await.expect("stats"),
        stats(3, 2, Some(&j2), 1),
        "[jobs] a dead job counts as dead, not depth"
    );
    let second = claim_one(&store, "send", Duration::from_secs(30)).await;
    store.retry_job(&second.token, Duration::from_secs(3600), "later").await.expect("retry");
    assert_eq!(
        store.job_stats("send").await.expect("stats"),
        stats(3, 1, Some(&j3), 1),
        "[jobs] a job retried later is not due"
    );
    assert_eq!(store.job_stats("other").await.expect("stats"), stats(1, 1, Some(&other), 0), "[jobs] per kind");
}
