//! [`TemplateStore`] over PostgreSQL.

use async_trait::async_trait;

use crm_core::ports::store::check_event_account;
use crm_core::{AccountId, Error, Event, Page, PageRequest, Result, Template, TemplateId, TemplateStore};

use super::{PgStore, append, commit};
use crate::error::db;

#[async_trait]
impl TemplateStore for PgStore {
    async fn insert_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let parameters = template.parameters.as_ref().map(|p| crate::rows::to_json("parameters", p)).transpose()?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO templates (id, account_id, name, language, category, body, variables, created_at, updated_at, \
             parameters) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(template.id.into_uuid())
        .bind(template.account_id.into_uuid())
        .bind(&template.name)
        .bind(&template.language)
        .bind(template.category.as_str())
        .bind(&template.body)
        .bind(&template.variables)
        .bind(template.created_at)
        .bind(template.updated_at)
        .bind(parameters)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("inserting a template", e))?;
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn update_template(&self, template: &Template, event: &Event) -> Result<()> {
        check_event_account(template.account_id, event)?;
        let parameters = template.parameters.as_ref().map(|p| crate::rows::to_json("parameters", p)).transpose()?;
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE templates SET name = $1, language = $2, category = $3, body = $4, variables = $5, updated_at = $6, \
             parameters = $9 WHERE id = $7 AND account_id = $8",
        )
        .bind(&template.name)
        .bind(&template.language)
        .bind(template.category.as_str())
        .bind(&template.body)
        .bind(&template.variables)
        .bind(template.updated_at)
        .bind(template.id.into_uuid())
        .bind(template.account_id.into_uuid())
        .bind(parameters)
        .execute(&mut *tx)
        .await
        .map_err(|e| db("updating a template", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("template"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn delete_template(&self, account: AccountId, id: TemplateId, event: &Event) -> Result<()> {
        check_event_account(account, event)?;
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM templates WHERE id = $1 AND account_id = $2")
            .bind(id.into_uuid())
            .bind(account.into_uuid())
            .execute(&mut *tx)
            .await
            .map_err(|e| db("deleting a template", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("template"));
        }
        append(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_template(&self, account: AccountId, id: TemplateId) -> Result<Template> {
        crate::rows::templates::get_template(self, account, id).await
    }

    async fn find_template(&self, account: AccountId, name: &str, language: &str) -> Result<Option<Template>> {
        crate::rows::templates::find_template(self, account, name, language).await
    }

    async fn list_templates(&self, account: AccountId, page: &PageRequest) -> Result<Page<Template>> {
        crate::rows::templates::list_templates(self, account, page).await
    }
}
