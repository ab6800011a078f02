//! Templates: row decoding and the reads both dialects share.

use crm_core::{AccountId, Error, Page, PageRequest, Result, Template, TemplateCategory, TemplateId};

use super::{Columns, Fetch, page_args};

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
        parameters: r.opt_json("parameters")?.map(|v| super::json_from("parameters", v)).transpose()?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// [`TemplateStore::get_template`](crm_core::TemplateStore::get_template).
pub(crate) async fn get_template(db: &impl Fetch, account: AccountId, id: TemplateId) -> Result<Template> {
    let sql = "SELECT * FROM templates WHERE id = $1 AND account_id = $2";
    let args = vec![id.into_uuid().into(), account.into_uuid().into()];
    let row = db.fetch_optional("reading a template", sql, args).await?;
    row.map(|r| template_row(&r)).transpose()?.ok_or(Error::not_found("template"))
}

/// [`TemplateStore::find_template`](crm_core::TemplateStore::find_template).
pub(crate) async fn find_template(
    db: &impl Fetch,
    account: AccountId,
    name: &str,
    language: &str,
) -> Result<Option<Template>> {
    let sql = "SELECT * FROM templates WHERE account_id = $1 AND name = $2 AND language = $3";
    let args = vec![account.into_uuid().into(), name.into(), language.into()];
    let row = db.fetch_optional("reading a template", sql, args).await?;
    row.map(|r| template_row(&r)).transpose()
}

/// [`TemplateStore::list_templates`](crm_core::TemplateStore::list_templates).
pub(crate) async fn list_templates(db: &impl Fetch, account: AccountId, page: &PageRequest) -> Result<Page<Template>> {
    let sql = "SELECT * FROM templates WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3";
    let mut args = vec![account.into_uuid().into()];
    args.extend(page_args(page));
    let rows = db.fetch_all("listing templates", sql, args).await?;
    let items = rows.iter().map(template_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, |t| t.id.into_uuid()))
}
