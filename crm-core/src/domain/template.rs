//! Message templates with `{{variable}}` placeholders.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::{AccountId, Error, Result, TemplateId};

/// Longest template body, in characters.
pub const MAX_TEMPLATE_BODY: usize = 4096;

/// What a template is for (WhatsApp's categories, which price differently).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TemplateCategory {
    /// Promotions and offers.
    #[default]
    Marketing,
    /// Order updates, reminders.
    Utility,
    /// One-time passwords.
    Authentication,
}

impl TemplateCategory {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateCategory::Marketing => "marketing",
            TemplateCategory::Utility => "utility",
            TemplateCategory::Authentication => "authentication",
        }
    }

    /// Parses [`TemplateCategory::as_str`] output.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "marketing" => Ok(TemplateCategory::Marketing),
            "utility" => Ok(TemplateCategory::Utility),
            "authentication" => Ok(TemplateCategory::Authentication),
            _ => Err(Error::validation("category", "must be marketing, utility or authentication")),
        }
    }
}

/// A reusable message body with `{{variable}}` placeholders.
///
/// ```
/// use crm_core::{Template, NewTemplate, AccountId};
/// use std::collections::BTreeMap;
/// let t = Template::new(AccountId::new(), NewTemplate {
///     name: "boas_vindas".into(),
///     body: "Olá {{nome}}, seu pedido {{ pedido }} saiu!".into(),
///     ..Default::default()
/// }, chrono::Utc::now())?;
/// assert_eq!(t.variables, ["nome", "pedido"]);
/// let vars = BTreeMap::from([("nome".to_string(), "Ana".to_string())]);
/// let err = t.render(&vars, crm_core::MAX_TEXT_LEN).unwrap_err();
/// assert_eq!(err.to_string(), "invalid variables: missing pedido");
/// assert_eq!(t.render_lenient(&vars, crm_core::MAX_TEXT_LEN)?, "Olá Ana, seu pedido {{ pedido }} saiu!");
/// # Ok::<(), crm_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    /// Id.
    pub id: TemplateId,
    /// Owning account.
    pub account_id: AccountId,
    /// Name: lower-case letters, digits and `_`, 1–512 characters; unique per
    /// account and language (it is also the provider template's name).
    pub name: String,
    /// Language code, e.g. `pt_BR`.
    pub language: String,
    /// Category.
    pub category: TemplateCategory,
    /// Body with placeholders.
    pub body: String,
    /// Placeholder names in order of first appearance.
    pub variables: Vec<String>,
    /// The provider template's parameters outside the body (header, buttons),
    /// as synced from the provider; `None` when unknown (then only the body's
    /// variables are checked before a send).
    #[serde(default)]
    pub parameters: Option<Vec<TemplateParameter>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Input for creating or replacing a template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTemplate {
    /// Name (required): lower-case letters, digits or `_`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9_]{1,512}$"))]
    pub name: String,
    /// Language; defaults to `pt_BR`.
    #[serde(default)]
    pub language: Option<String>,
    /// Category; defaults to marketing.
    #[serde(default)]
    pub category: Option<TemplateCategory>,
    /// Body (required).
    pub body: String,
    /// The provider template's header and button parameters (a sync from the
    /// provider sets them); at most 20, names `header.<name>`,
    /// `header.image`/`video`/`document`, `button.<index>`, `quick_reply.<index>`.
    #[serde(default)]
    pub parameters: Option<Vec<TemplateParameter>>,
}

/// What a provider template parameter outside the body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ParameterKind {
    /// Text (a header placeholder).
    Text,
    /// A header image (https link or provider media id).
    Image,
    /// A header video.
    Video,
    /// A header document.
    Document,
    /// The dynamic suffix of a URL button.
    UrlSuffix,
    /// The payload a quick-reply button sends back.
    Payload,
    /// A header location: `latitude,longitude`, optionally followed by
    /// `|name` and `|address`.
    Location,
    /// The coupon code a copy-code button copies (at most 15 characters).
    CouponCode,
}

/// One parameter of a provider template outside its body, named the way
/// template sends name it in `variables`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateParameter {
    /// `header.<name>` (text), `header.image`/`header.video`/`header.document`,
    /// `header.location`, `button.<index>` (URL suffix, or an authentication
    /// template's one-time code), `quick_reply.<index>` (payload) or
    /// `copy_code.<index>` (coupon code).
    pub name: String,
    /// What it holds.
    pub kind: ParameterKind,
    /// Whether a send must give it (a quick-reply payload is optional).
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// Whether a variable name addresses a template component other than the
/// body (`header.…`, `button.…`, `quick_reply.…`, `copy_code.…`).
pub fn is_component_variable(name: &str) -> bool {
    ["header.", "button.", "quick_reply.", "copy_code."].iter().any(|p| name.starts_with(p))
}

/// The kind a parameter name implies, or why the name is not one.
fn parameter_kind_of(name: &str) -> Option<&'static [ParameterKind]> {
    let index = |s: &str| s.len() == 1 && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(h) = name.strip_prefix("header.") {
        return match h {
            "image" => Some(&[ParameterKind::Image]),
            "video" => Some(&[ParameterKind::Video]),
            "document" => Some(&[ParameterKind::Document]),
            "location" => Some(&[ParameterKind::Location]),
            n if valid_var_name(n) => Some(&[ParameterKind::Text]),
            _ => None,
        };
    }
    if name.strip_prefix("button.").is_some_and(index) {
        return Some(&[ParameterKind::UrlSuffix]);
    }
    if name.strip_prefix("quick_reply.").is_some_and(index) {
        return Some(&[ParameterKind::Payload]);
    }
    if name.strip_prefix("copy_code.").is_some_and(index) {
        return Some(&[ParameterKind::CouponCode]);
    }
    None
}

fn check_parameters(parameters: &[TemplateParameter]) -> Result<()> {
    if parameters.len() > 20 {
        return Err(Error::validation("parameters", "at most 20"));
    }
    let mut seen = BTreeSet::new();
    let mut header_media = 0;
    let mut header_text = 0;
    for p in parameters {
        match parameter_kind_of(&p.name) {
            Some(kinds) if kinds.contains(&p.kind) => {}
            _ => {
                return Err(Error::validation(
                    "parameters",
                    format!(
                        "{:?} is not a {} parameter name (header.<name>, header.image|video|document|location, button.<0-9>, quick_reply.<0-9>, copy_code.<0-9>)",
                        p.name.chars().take(80).collect::<String>(),
                        format!("{:?}", p.kind).to_lowercase()
                    ),
                ));
            }
        }
        match p.kind {
            ParameterKind::Text => header_text += 1,
            ParameterKind::Image | ParameterKind::Video | ParameterKind::Document | ParameterKind::Location => {
                header_media += 1
            }
            _ => {}
        }
        if !seen.insert(p.name.as_str()) {
            return Err(Error::validation("parameters", format!("{} is named twice", p.name)));
        }
    }
    if header_media > 1 || (header_media == 1 && header_text > 0) {
        return Err(Error::validation("parameters", "a header has text parameters or one media or location, not both"));
    }
    Ok(())
}

/// Variable values by name.
pub type Variables = BTreeMap<String, String>;

enum Piece<'a> {
    Literal(&'a str),
    /// `raw` is the whole `{{ … }}`, `name` the trimmed inside.
    Var {
        raw: &'a str,
        name: &'a str,
    },
}

fn valid_var_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Splits `body` into literals and placeholders. With `strict`, a malformed
/// placeholder (`{{` without `}}`, or a bad name) is an error; otherwise it is
/// kept as literal text.
fn tokenize(body: &str, strict: bool) -> Result<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            if strict {
                return Err(Error::validation("body", "has a `{{` without a closing `}}`"));
            }
            break;
        };
        let name = after[..close].trim();
        if !valid_var_name(name) {
            if strict {
                return Err(Error::validation("body", "placeholder names must be 1 to 64 letters, digits, `_` or `.`"));
            }
            out.push(Piece::Literal(&rest[..open + 2]));
            rest = after;
            continue;
        }
        if open > 0 {
            out.push(Piece::Literal(&rest[..open]));
        }
        out.push(Piece::Var { raw: &rest[open..open + 2 + close + 2], name });
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Literal(rest));
    }
    Ok(out)
}

/// Longest text a render preview (`POST /templates/{id}/render`) returns, in
/// characters. Sends are bounded by WhatsApp's body limit
/// ([`MAX_TEXT_LEN`](crate::MAX_TEXT_LEN)) instead.
pub const MAX_RENDER_PREVIEW: usize = 16 * 1024;

fn too_long(max_chars: usize) -> Error {
    Error::validation("variables", format!("the rendered text would exceed the limit of {max_chars} characters"))
}

/// The number of characters of `s` when it is at most `room`, without
/// counting further than `room + 1`.
fn chars_within(s: &str, room: usize) -> Option<usize> {
    if s.len() <= room {
        return Some(s.chars().count());
    }
    let n = s.chars().take(room.saturating_add(1)).count();
    (n <= room).then_some(n)
}

/// Joins the pieces' texts: first counts the output piece by piece and
/// refuses with [`Error::Validation`] on `variables` as soon as it would pass
/// `max_chars`, then allocates exactly what is needed, so a hostile value
/// repeated by many placeholders never gets allocated.
fn fill<'a>(pieces: &[Piece<'a>], text: impl Fn(&Piece<'a>) -> &'a str, max_chars: usize) -> Result<String> {
    let (mut chars, mut bytes) = (0usize, 0usize);
    for piece in pieces {
        let t = text(piece);
        chars += chars_within(t, max_chars - chars).ok_or_else(|| too_long(max_chars))?;
        bytes += t.len();
    }
    let mut s = String::with_capacity(bytes);
    for piece in pieces {
        s.push_str(text(piece));
    }
    Ok(s)
}

/// Renders `body` leaving unknown or malformed placeholders untouched.
/// [`Error::Validation`] on `variables` when the result would be longer than
/// `max_chars` characters (checked before it is allocated).
pub fn render_lenient(body: &str, vars: &Variables, max_chars: usize) -> Result<String> {
    let pieces = tokenize(body, false).unwrap_or_default();
    fill(
        &pieces,
        |p| match p {
            Piece::Literal(l) => l,
            Piece::Var { raw, name } => vars.get(*name).map_or(*raw, String::as_str),
        },
        max_chars,
    )
}

/// Renders `body` strictly: every placeholder must have a value.
/// [`Error::Validation`] on `variables` names every missing one, or says the
/// result would be longer than `max_chars` characters (checked before it is
/// allocated); on `body` when a placeholder is malformed.
pub fn render_strict(body: &str, vars: &Variables, max_chars: usize) -> Result<String> {
    let pieces = tokenize(body, true)?;
    let missing: BTreeSet<&str> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Var { name, .. } if !vars.contains_key(*name) => Some(*name),
            _ => None,
        })
        .collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.into_iter().collect();
        return Err(Error::validation("variables", format!("missing {}", names.join(", "))));
    }
    fill(
        &pieces,
        |p| match p {
            Piece::Literal(l) => l,
            Piece::Var { name, .. } => vars.get(*name).map_or("", String::as_str),
        },
        max_chars,
    )
}

fn validate_template_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 512 || !n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(Error::validation("name", "must be 1 to 512 lower-case letters, digits or _"));
    }
    Ok(n.to_owned())
}

fn validate_language(lang: &str) -> Result<String> {
    let l = lang.trim();
    let (base, region) = match l.split_once('_') {
        Some((b, r)) => (b, Some(r)),
        None => (l, None),
    };
    let ok = (2..=3).contains(&base.len())
        && base.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()));
    if !ok {
        return Err(Error::validation("language", "must look like pt_BR, en_US or es"));
    }
    Ok(l.to_owned())
}

/// Checks a reference to a template (a name and a language, as a send
/// names it) against the rules [`Template::new`] applies, so input that
/// cannot name any template (a NUL, a space, an over-long name) is
/// [`Error::Validation`] on `name` or `language` before any lookup.
pub fn check_template_ref(name: &str, language: &str) -> Result<()> {
    validate_template_name(name)?;
    validate_language(language)?;
    Ok(())
}

impl Template {
    /// Validates `input` into a template; [`Error::Validation`] on `name`,
    /// `language` or `body` (empty, too long, or a malformed placeholder).
    pub fn new(account_id: AccountId, input: NewTemplate, now: DateTime<Utc>) -> Result<Self> {
        let mut t = Template {
            id: TemplateId::new(),
            account_id,
            name: String::new(),
            language: String::new(),
            category: TemplateCategory::default(),
            body: String::new(),
            variables: Vec::new(),
            parameters: None,
            created_at: now,
            updated_at: now,
        };
        t.replace(input, now)?;
        Ok(t)
    }

    /// Replaces name, language, category and body, validating first (on error
    /// `self` is unchanged).
    pub fn replace(&mut self, input: NewTemplate, now: DateTime<Utc>) -> Result<()> {
        let name = validate_template_name(&input.name)?;
        let language = validate_language(input.language.as_deref().unwrap_or("pt_BR"))?;
        if input.body.trim().is_empty() {
            return Err(Error::validation("body", "must not be empty"));
        }
        if input.body.contains('\0') {
            return Err(Error::validation("body", "must not contain NUL characters"));
        }
        if input.body.chars().count() > MAX_TEMPLATE_BODY {
            return Err(Error::validation("body", format!("must be at most {MAX_TEMPLATE_BODY} characters")));
        }
        let mut variables: Vec<String> = Vec::new();
        for piece in tokenize(&input.body, true)? {
            if let Piece::Var { name, .. } = piece
                && !variables.iter().any(|v| v == name)
            {
                variables.push(name.to_owned());
            }
        }
        if let Some(p) = &input.parameters {
            check_parameters(p)?;
        }
        self.name = name;
        self.language = language;
        self.parameters = input.parameters;
        self.category = input.category.unwrap_or_default();
        self.body = input.body;
        self.variables = variables;
        self.updated_at = now;
        Ok(())
    }

    /// Strict render of at most `max_chars` characters: see [`render_strict`].
    pub fn render(&self, vars: &Variables, max_chars: usize) -> Result<String> {
        render_strict(&self.body, vars, max_chars)
    }

    /// Lenient render of at most `max_chars` characters: see [`render_lenient`].
    pub fn render_lenient(&self, vars: &Variables, max_chars: usize) -> Result<String> {
        render_lenient(&self.body, vars, max_chars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn strict_names_every_missing_variable() {
        let err = render_strict("{{a}} {{b}} {{c}} {{a}}", &vars(&[("b", "1")]), 100).unwrap_err();
        assert_eq!(err.to_string(), "invalid variables: missing a, c");
        assert_eq!(render_strict("{{a}}-{{ a }}", &vars(&[("a", "x")]), 100).unwrap(), "x-x");
    }

    #[test]
    fn lenient_leaves_unknown_and_malformed_alone() {
        let v = vars(&[("nome", "Ana")]);
        let lenient = |body: &str| render_lenient(body, &v, 100).unwrap();
        assert_eq!(lenient("Oi {{nome}} {{x}} {{ bad name }} {{"), "Oi Ana {{x}} {{ bad name }} {{");
        assert_eq!(lenient(""), "");
        assert_eq!(lenient("{{nome}}{{nome}}"), "AnaAna");
    }

    #[test]
    fn values_are_not_re_expanded() {
        let v = vars(&[("a", "{{b}}"), ("b", "no")]);
        assert_eq!(render_strict("{{a}}", &v, 100).unwrap(), "{{b}}");
    }

    #[test]
    fn the_output_is_bounded_before_it_is_allocated() {
        // 819 placeholders and a 1 MB value would be an 819 MB body.
        let body = "{{a}}".repeat(819);
        let v = vars(&[("a", &"x".repeat(1 << 20))]);
        for result in [render_strict(&body, &v, 4096), render_lenient(&body, &v, 4096)] {
            let err = result.unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid variables: the rendered text would exceed the limit of 4096 characters"
            );
        }
        // Exactly at the limit renders; characters are counted, not bytes.
        let v = vars(&[("a", "ã")]);
        assert_eq!(render_strict("{{a}}{{a}}z", &v, 3).unwrap(), "ããz");
        assert!(render_strict("{{a}}{{a}}zz", &v, 3).is_err());
        assert!(render_lenient("{{b}}", &v, 4).is_err(), "a kept placeholder counts too");
    }

    #[test]
    fn provider_parameters_are_checked() {
        let p = |name: &str, kind| TemplateParameter { name: name.into(), kind, required: true };
        let mk = |parameters: Vec<TemplateParameter>| {
            let input = NewTemplate {
                name: "pedido".into(),
                body: "Oi {{1}}".into(),
                parameters: Some(parameters),
                ..Default::default()
            };
            Template::new(AccountId::new(), input, Utc::now())
        };
        let ok = mk(vec![
            p("header.image", ParameterKind::Image),
            p("button.1", ParameterKind::UrlSuffix),
            p("quick_reply.0", ParameterKind::Payload),
        ]);
        assert_eq!(ok.unwrap().parameters.map(|v| v.len()), Some(3));
        let more = mk(vec![p("header.location", ParameterKind::Location), p("copy_code.1", ParameterKind::CouponCode)]);
        assert_eq!(more.unwrap().parameters.map(|v| v.len()), Some(2));
        for bad in [
            vec![p("header.image", ParameterKind::Video)],
            vec![p("header.location", ParameterKind::Text)],
            vec![p("copy_code.x", ParameterKind::CouponCode)],
            vec![p("header.location", ParameterKind::Location), p("header.image", ParameterKind::Image)],
            vec![p("header.1", ParameterKind::Text), p("header.location", ParameterKind::Location)],
            vec![p("button.10", ParameterKind::UrlSuffix)],
            vec![p("footer.1", ParameterKind::Text)],
            vec![p("header.1", ParameterKind::Text), p("header.1", ParameterKind::Text)],
            vec![p("header.1", ParameterKind::Text), p("header.image", ParameterKind::Image)],
            (0..21).map(|i| p(&format!("header.v{i}"), ParameterKind::Text)).collect(),
        ] {
            let err = mk(bad.clone()).unwrap_err();
            assert!(matches!(&err, Error::Validation { field, .. } if field == "parameters"), "{bad:?}: {err}");
        }
        assert!(is_component_variable("header.1") && is_component_variable("quick_reply.0"));
        assert!(is_component_variable("copy_code.0") && is_component_variable("header.location"));
        assert!(!is_component_variable("first_name") && !is_component_variable("headers"));
    }

    #[test]
    fn construction_validates() {
        let now = Utc::now();
        let a = AccountId::new();
        let mk = |name: &str, body: &str, lang: Option<&str>| {
            Template::new(
                a,
                NewTemplate {
                    name: name.into(),
                    body: body.into(),
                    language: lang.map(Into::into),
                    category: None,
                    parameters: None,
                },
                now,
            )
        };
        assert!(mk("ok_1", "Olá {{1}}", None).is_ok());
        assert!(mk("Bad Name", "x", None).is_err());
        assert!(mk("ok", "  ", None).is_err());
        assert!(mk("ok", "{{unclosed", None).is_err());
        assert!(mk("ok", "{{ two words }}", None).is_err());
        assert!(mk("ok", "x", Some("portuguese")).is_err());
        assert!(mk("ok", "x", Some("en")).is_ok());
        assert!(mk("ok", &"x".repeat(MAX_TEMPLATE_BODY + 1), None).is_err());
        assert_eq!(mk("ok", "{{b}}{{a}}{{b}}", None).unwrap().variables, ["b", "a"]);
    }
}
