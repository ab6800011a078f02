//! Templates: create, read, replace, delete.

use serde_json::json;

use super::Crm;
use crate::{AccountId, EventType, NewTemplate, Page, PageRequest, Result, Template, TemplateId};

impl Crm {
    /// Creates a template (`template.created`).
    pub async fn create_template(&self, account: AccountId, input: NewTemplate) -> Result<Template> {
        let t = Template::new(account, input, self.now())?;
        let event = self.event(account, EventType::TEMPLATE_CREATED, &t);
        self.store.insert_template(&t, &event).await?;
        Ok(t)
    }

    /// Replaces a template (`template.updated`).
    pub async fn update_template(&self, account: AccountId, id: TemplateId, input: NewTemplate) -> Result<Template> {
        let mut t = self.store.get_template(account, id).await?;
        t.replace(input, self.now())?;
        let event = self.event(account, EventType::TEMPLATE_UPDATED, &t);
        self.store.update_template(&t, &event).await?;
        Ok(t)
    }

    /// Deletes a template (`template.deleted`).
    pub async fn delete_template(&self, account: AccountId, id: TemplateId) -> Result<()> {
        let event = self.event(account, EventType::TEMPLATE_DELETED, &json!({ "id": id }));
        self.store.delete_template(account, id, &event).await
    }

    /// One template.
    pub async fn get_template(&self, account: AccountId, id: TemplateId) -> Result<Template> {
        self.store.get_template(account, id).await
    }

    /// A page of templates.
    pub async fn list_templates(&self, account: AccountId, page: &PageRequest) -> Result<Page<Template>> {
        self.store.list_templates(account, page).await
    }
}
