//! [`SequenceStore`] for [`MemoryStore`].

use async_trait::async_trait;

use super::{JobEntry, MemoryStore, State, page_of};
use crate::ports::sequences::{Enrolling, EnrolmentQuery, check_enrolling, check_enrolment_update};
use crate::ports::store::check_event_account;
use crate::{
    AccountId, Enrolment, EnrolmentId, Error, Event, Job, Page, PageRequest, Result, Sequence, SequenceId,
    SequenceStore,
};

impl State {
    fn sequence(&self, account: AccountId, id: SequenceId) -> Result<&Sequence> {
        self.sequences.get(&id).filter(|s| s.account_id == account).ok_or(Error::not_found("sequence"))
    }

    fn enrolment(&self, account: AccountId, id: EnrolmentId) -> Result<&Enrolment> {
        self.enrolments.get(&id).filter(|e| e.account_id == account).ok_or(Error::not_found("enrolment"))
    }
}

#[async_trait]
impl SequenceStore for MemoryStore {
    async fn insert_sequence(&self, sequence: &Sequence, event: &Event) -> Result<()> {
        check_event_account(sequence.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.sequences.contains_key(&sequence.id) {
            return Err(Error::conflict("sequence", "id already exists"));
        }
        s.sequences.insert(sequence.id, sequence.clone());
        s.append(event);
        Ok(())
    }

    async fn get_sequence(&self, account: AccountId, id: SequenceId) -> Result<Sequence> {
        self.lock().sequence(account, id).cloned()
    }

    async fn list_sequences(&self, account: AccountId, page: &PageRequest) -> Result<Page<Sequence>> {
        let s = self.lock();
        let items = s.sequences.values().filter(|q| q.account_id == account).cloned();
        Ok(page_of(items, page, |q| q.id.into_uuid()))
    }

    async fn update_sequence(&self, sequence: &Sequence, event: &Event) -> Result<Sequence> {
        check_event_account(sequence.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let stored = s.sequence(sequence.account_id, sequence.id)?;
        if stored.version != sequence.version {
            return Err(Error::conflict("sequence", "it was changed meanwhile; read it again"));
        }
        let next = Sequence { created_at: stored.created_at, version: stored.version + 1, ..sequence.clone() };
        s.sequences.insert(next.id, next.clone());
        s.append(event);
        Ok(next)
    }

    async fn delete_sequence(&self, account: AccountId, id: SequenceId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        s.sequence(account, id)?;
        s.sequences.remove(&id);
        s.enrolments.retain(|_, e| e.sequence_id != id);
        s.active_enrolments.retain(|(seq, _), _| *seq != id);
        s.append(event);
        Ok(())
    }

    async fn enrol(&self, account: AccountId, batch: &[Enrolling]) -> Result<Vec<bool>> {
        check_enrolling(account, batch)?;
        let mut s = self.lock();
        for item in batch {
            s.sequence(account, item.enrolment.sequence_id)?;
            s.ensure_new(&item.event)?;
            if s.enrolments.contains_key(&item.enrolment.id) {
                return Err(Error::conflict("enrolment", "id already exists"));
            }
        }
        // All checks passed before anything is written, except job clashes,
        // which are checked on a copy of the state-to-be.
        let mut stored = Vec::with_capacity(batch.len());
        let mut writes = Vec::new();
        let mut taken = std::collections::HashSet::new();
        for item in batch {
            let key = (item.enrolment.sequence_id, item.enrolment.contact_id);
            if s.active_enrolments.contains_key(&key) || !taken.insert(key) {
                stored.push(false);
                continue;
            }
            s.check_new_job(&item.job)?;
            stored.push(true);
            writes.push(item);
        }
        for item in writes {
            let e = &item.enrolment;
            s.active_enrolments.insert((e.sequence_id, e.contact_id), e.id);
            s.enrolments.insert(e.id, e.clone());
            s.jobs.insert(item.job.id, JobEntry { job: item.job.clone(), lease: None });
            s.append(&item.event);
        }
        Ok(stored)
    }

    async fn get_enrolment(&self, account: AccountId, id: EnrolmentId) -> Result<Enrolment> {
        self.lock().enrolment(account, id).cloned()
    }

    async fn list_enrolments(&self, account: AccountId, query: &EnrolmentQuery) -> Result<Page<Enrolment>> {
        let s = self.lock();
        let items = s
            .enrolments
            .values()
            .filter(|e| e.account_id == account)
            .filter(|e| query.sequence.is_none_or(|q| e.sequence_id == q))
            .filter(|e| query.contact.is_none_or(|c| e.contact_id == c))
            .filter(|e| query.state.is_none_or(|st| e.state == st))
            .cloned();
        Ok(page_of(items, &query.page, |e| e.id.into_uuid()))
    }

    async fn update_enrolment(
        &self,
        enrolment: &Enrolment,
        event: Option<&Event>,
        next: Option<&Job>,
    ) -> Result<Enrolment> {
        check_enrolment_update(enrolment, event, next)?;
        let mut s = self.lock();
        if let Some(e) = event {
            s.ensure_new(e)?;
        }
        let stored = s.enrolment(enrolment.account_id, enrolment.id)?;
        if stored.version != enrolment.version {
            return Err(Error::conflict("enrolment", "it was changed meanwhile; read it again"));
        }
        if !stored.is_active() && enrolment.is_active() {
            return Err(Error::conflict("enrolment", "a finished enrolment does not become active again"));
        }
        if let Some(job) = next {
            s.check_new_job(job)?;
        }
        let updated = Enrolment {
            sequence_id: stored.sequence_id,
            contact_id: stored.contact_id,
            source: stored.source.clone(),
            enrolled_at: stored.enrolled_at,
            version: stored.version + 1,
            ..enrolment.clone()
        };
        let key = (updated.sequence_id, updated.contact_id);
        if !updated.is_active() && s.active_enrolments.get(&key) == Some(&updated.id) {
            s.active_enrolments.remove(&key);
        }
        s.enrolments.insert(updated.id, updated.clone());
        if let Some(job) = next {
            s.jobs.insert(job.id, JobEntry { job: job.clone(), lease: None });
        }
        if let Some(e) = event {
            s.append(e);
        }
        Ok(updated)
    }
}
