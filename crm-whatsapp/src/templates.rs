//! Message templates of a WhatsApp Business Account: list (to sync into
//! crm's templates), create and delete through the Graph API.

use crm_core::{Error, NewTemplate, ParameterKind, Result, TemplateCategory, TemplateParameter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::CloudApiMessenger;

/// Most pages read in one sync (100 templates each).
const MAX_PAGES: usize = 50;

/// One template as Meta keeps it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProviderTemplate {
    /// Meta's id.
    #[serde(default)]
    pub id: String,
    /// Name.
    pub name: String,
    /// Language code, e.g. `pt_BR`.
    pub language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    #[serde(default)]
    pub category: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, …
    #[serde(default)]
    pub status: String,
    /// Header, body, footer and buttons, in Meta's shape.
    #[serde(default)]
    pub components: Vec<Value>,
}

impl ProviderTemplate {
    /// Whether messages may use it now.
    pub fn is_approved(&self) -> bool {
        self.status.eq_ignore_ascii_case("APPROVED")
    }

    /// The body component's text (`{{1}}` or `{{name}}` placeholders).
    pub fn body_text(&self) -> Option<&str> {
        self.components.iter().find(|c| c["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("BODY")))?["text"]
            .as_str()
    }

    /// The parameters of its header and buttons, named as template sends
    /// name them in `variables` (see [`crate::payload`]): a text header's
    /// placeholders `header.<name>`, a media header `header.image` /
    /// `header.video` / `header.document` (required), a location header
    /// `header.location` (required), a URL button with a
    /// dynamic suffix `button.<index>` (required), a quick-reply button's
    /// payload `quick_reply.<index>` (optional: Meta sends the button's
    /// text when none is given), an authentication template's OTP button
    /// `button.<index>` (the code, required), a copy-code button
    /// `copy_code.<index>` (the coupon, required). Other buttons (phone
    /// number, static URL) take no parameter.
    pub fn parameters(&self) -> Vec<TemplateParameter> {
        let of_type = |t: &'static str| {
            self.components.iter().filter(move |c| c["type"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(t)))
        };
        let mut out = Vec::new();
        let param = |name: String, kind, required| TemplateParameter { name, kind, required };
        for header in of_type("HEADER") {
            match header["format"].as_str().unwrap_or("TEXT").to_ascii_uppercase().as_str() {
                "TEXT" => {
                    for name in placeholders(header["text"].as_str().unwrap_or("")) {
                        out.push(param(format!("header.{name}"), ParameterKind::Text, true));
                    }
                }
                "IMAGE" => out.push(param("header.image".into(), ParameterKind::Image, true)),
                "VIDEO" => out.push(param("header.video".into(), ParameterKind::Video, true)),
                "DOCUMENT" => out.push(param("header.document".into(), ParameterKind::Document, true)),
                "LOCATION" => out.push(param("header.location".into(), ParameterKind::Location, true)),
                _ => {}
            }
        }
        for buttons in of_type("BUTTONS") {
            for (index, b) in buttons["buttons"].as_array().into_iter().flatten().enumerate().take(10) {
                match b["type"].as_str().unwrap_or("").to_ascii_uppercase().as_str() {
                    "URL" if b["url"].as_str().is_some_and(|u| u.contains("{{")) => {
                        out.push(param(format!("button.{index}"), ParameterKind::UrlSuffix, true));
                    }
                    "QUICK_REPLY" => out.push(param(format!("quick_reply.{index}"), ParameterKind::Payload, false)),
                    // An authentication template's code goes in its button
                    // as a URL parameter, whatever the OTP type.
                    "OTP" => out.push(param(format!("button.{index}"), ParameterKind::UrlSuffix, true)),
                    "COPY_CODE" => out.push(param(format!("copy_code.{index}"), ParameterKind::CouponCode, true)),
                    _ => {}
                }
            }
        }
        out
    }

    /// crm's template for it: its body with the same placeholders (crm's
    /// `{{var}}` syntax is Meta's) and its header and button
    /// [`parameters`](Self::parameters), so sends render and are checked
    /// locally before Meta is called.
    pub fn to_new_template(&self) -> Result<NewTemplate> {
        let body = self
            .body_text()
            .ok_or_else(|| Error::validation("components", format!("template {} has no body text", self.name)))?;
        let category = match self.category.to_ascii_uppercase().as_str() {
            "UTILITY" => TemplateCategory::Utility,
            "AUTHENTICATION" => TemplateCategory::Authentication,
            _ => TemplateCategory::Marketing,
        };
        Ok(NewTemplate {
            name: self.name.clone(),
            language: Some(self.language.clone()),
            category: Some(category),
            body: body.to_owned(),
            parameters: Some(self.parameters()),
        })
    }
}

/// The trimmed names inside `{{ … }}` of `text`, first appearance first.
fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let name = after[..close].trim();
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
        rest = &after[close + 2..];
    }
    out
}

#[derive(Deserialize)]
struct TemplatePage {
    #[serde(default)]
    data: Vec<ProviderTemplate>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

fn check_id(field: &'static str, id: &str) -> Result<()> {
    if (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::validation(field, "must be 1 to 32 digits"))
    }
}

fn unreadable() -> Error {
    Error::Provider {
        provider: crate::PROVIDER.into(),
        transient: true,
        code: Some("malformed_response".into()),
        message: "the Graph API answered with an unreadable template list".into(),
        retry_after: None,
        source: None,
    }
}

/// Meta's category name for crm's.
fn category_name(c: TemplateCategory) -> &'static str {
    match c {
        TemplateCategory::Marketing => "MARKETING",
        TemplateCategory::Utility => "UTILITY",
        TemplateCategory::Authentication => "AUTHENTICATION",
    }
}

impl CloudApiMessenger {
    /// Every message template of the WhatsApp Business Account
    /// `business_account_id` (`GET /{waba}/message_templates`, page by page
    /// with Meta's `after` cursor; the token is only ever sent to the
    /// configured base URL).
    pub async fn list_templates(&self, business_account_id: &str) -> Result<Vec<ProviderTemplate>> {
        check_id("settings.business_account_id", business_account_id)?;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = format!(
                "{}/{business_account_id}/message_templates?fields=id,name,language,category,status,components&limit=100",
                self.root()
            );
            if let Some(a) = &after {
                if !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'-' || b == b'_') {
                    return Err(unreadable());
                }
                url.push_str("&after=");
                url.push_str(a);
            }
            let body = self.call(self.client().get(url)).await?;
            let page: TemplatePage = serde_json::from_slice(&body).map_err(|_| unreadable())?;
            out.extend(page.data);
            let next = page.paging.filter(|p| p.next.is_some()).and_then(|p| p.cursors).and_then(|c| c.after);
            match next {
                Some(a) if after.as_deref() != Some(a.as_str()) => after = Some(a),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Submits a template for Meta's review (`POST /{waba}/message_templates`)
    /// with its body as the only component; placeholders get example values
    /// (Meta requires them). Returns Meta's id and status.
    pub async fn create_template(&self, business_account_id: &str, template: &NewTemplate) -> Result<(String, String)> {
        check_id("settings.business_account_id", business_account_id)?;
        let vars = crm_core::Template::new(crm_core::AccountId::new(), template.clone(), chrono::Utc::now())?.variables;
        let positional = vars.iter().all(|v| v.bytes().all(|b| b.is_ascii_digit()));
        let mut body = json!({ "type": "BODY", "text": template.body });
        let mut request = json!({
            "name": template.name,
            "language": template.language.as_deref().unwrap_or("pt_BR"),
            "category": category_name(template.category.unwrap_or_default()),
        });
        if !vars.is_empty() {
            if positional {
                let examples: Vec<String> = vars.iter().map(|v| format!("example {v}")).collect();
                body["example"] = json!({ "body_text": [examples] });
            } else {
                let examples: Vec<Value> =
                    vars.iter().map(|v| json!({ "param_name": v, "example": format!("example {v}") })).collect();
                body["example"] = json!({ "body_text_named_params": examples });
                request["parameter_format"] = json!("NAMED");
            }
        }
        request["components"] = json!([body]);
        let url = format!("{}/{business_account_id}/message_templates", self.root());
        let answer = self.call(self.client().post(url).json(&request)).await?;
        let v: Value = serde_json::from_slice(&answer).map_err(|_| unreadable())?;
        let id = v["id"].as_str().ok_or_else(unreadable)?.to_owned();
        Ok((id, v["status"].as_str().unwrap_or("PENDING").to_owned()))
    }

    /// Deletes every language of the template `name` at Meta
    /// (`DELETE /{waba}/message_templates?name=…`).
    pub async fn delete_template(&self, business_account_id: &str, name: &str) -> Result<()> {
        check_id("settings.business_account_id", business_account_id)?;
        if !(1..=512).contains(&name.len())
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::validation("name", "must be 1 to 512 of a-z, 0-9, _"));
        }
        let url = format!("{}/{business_account_id}/message_templates?name={name}", self.root());
        self.call(self.client().delete(url)).await.map(|_| ())
    }
}
