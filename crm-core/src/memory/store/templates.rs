//! [`TemplateStore`] for [`MemoryStore`].

use async_trait::async_trait;

use super::{MemoryStore, page_of};
use crate::ports::store::check_event_account;
use crate::{AccountId, Error, Event, Page, PageRequest, Result, Template, TemplateId, TemplateStore};

#[async_trait]
impl TemplateStore for MemoryStore {
    async fn insert_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let clash = s
            .templates
            .values()
            .any(|t| t.account_id == template.account_id && t.name == template.name && t.language == template.language);
        if clash || s.templates.contains_key(&template.id) {
            return Err(Error::conflict("template", "a template with this name and language exists"));
        }
        s.templates.insert(template.id, template.clone());
        s.append(event);
        Ok(())
    }

    async fn update_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        let existing = s
            .templates
            .get(&template.id)
            .filter(|t| t.account_id == template.account_id)
            .ok_or(Error::not_found("template"))?;
        let created_at = existing.created_at;
        let clash = s.templates.values().any(|t| {
            t.id != template.id
                && t.account_id == template.account_id
                && t.name == template.name
                && t.language == template.language
        });
        if clash {
            return Err(Error::conflict("template", "a template with this name and language exists"));
        }
        let mut stored = template.clone();
        stored.created_at = created_at;
        s.templates.insert(template.id, stored);
        s.append(event);
        Ok(())
    }

    async fn delete_template(&self, account: AccountId, id: TemplateId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut s = self.lock();
        s.ensure_new(event)?;
        if s.templates.get(&id).is_none_or(|t| t.account_id != account) {
            return Err(Error::not_found("template"));
        }
        s.templates.remove(&id);
        s.append(event);
        Ok(())
    }

    async fn get_template(&self, account: AccountId, id: TemplateId) -> Result<Template> {
        self.lock().templates.get(&id).filter(|t| t.account_id == account).cloned().ok_or(Error::not_found("template"))
    }

    async fn find_template(&self, account: AccountId, name: &str, language: &str) -> Result<Option<Template>> {
        Ok(self
            .lock()
            .templates
            .values()
            .find(|t| t.account_id == account && t.name == name && t.language == language)
            .cloned())
    }

    async fn list_templates(&self, account: AccountId, page: &PageRequest) -> Result<Page<Template>> {
        let s = self.lock();
        let items = s.templates.values().filter(|t| t.account_id == account).cloned();
        Ok(page_of(items, page, |t| t.id.into_uuid()))
    }
}
