//! Decoding templates.

use crm_core::{AccountId, Result, Template, TemplateCategory, TemplateId};

use super::Columns;

/// A `templates` row.
pub(crate) fn template_row(r: &impl Columns) -> Result<Template> {
    Ok(Template {
        id: TemplateId::from_uuid(r.uuid("id")?),
        account_id: AccountId::from_uuid(r.uuid("account_id")?),
        name: r.text("name")?,
        language: r.text("language")?,
        category: r.parsed("category", TemplateCategory::parse)?,
        body: r.text("body")?,
        variables: r.text_list("variables")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}
