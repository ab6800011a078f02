//! The dashboard's two languages: Brazilian Portuguese (the default) and
//! English. Every visible string is a key in one table, so a missing
//! translation is a compile-time gap in one place, not a blank on a page.

use std::collections::BTreeMap;

/// A language the dashboard speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Português (Brasil), the default.
    PtBr,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 tag (`lang` attribute, cookie value).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::PtBr => "pt-BR",
            Lang::En => "en",
        }
    }

    /// A language from a cookie or switch value; `None` when unknown.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim().to_ascii_lowercase();
        if v == "en" || v.starts_with("en-") {
            Some(Lang::En)
        } else if v == "pt" || v.starts_with("pt-") {
            Some(Lang::PtBr)
        } else {
            None
        }
    }

    /// The first supported language of an `Accept-Language` header, by
    /// quality; pt-BR when none is supported.
    pub fn from_accept_language(header: &str) -> Self {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("");
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            if let Some(lang) = Lang::parse(tag)
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::PtBr, |(_, l)| l)
    }

    /// Every string of the dashboard in this language, by key.
    pub fn strings(self) -> BTreeMap<&'static str, &'static str> {
        STRINGS
            .iter()
            .map(|(key, pt, en)| {
                (
                    *key,
                    match self {
                        Lang::PtBr => *pt,
                        Lang::En => *en,
                    },
                )
            })
            .collect()
    }
}

/// `(key, pt-BR, en)`.
const STRINGS: &[(&str, &str, &str)] = &[
    ("app_name", "CRM Pro", "CRM Pro"),
    ("skip", "Pular para o conteúdo", "Skip to content"),
    ("nav_overview", "Visão geral", "Overview"),
    ("nav_contacts", "Contatos", "Contacts"),
    ("logout", "Sair", "Log out"),
    ("language", "Idioma", "Language"),
    ("login_title", "Entrar", "Log in"),
    ("email", "E-mail", "E-mail"),
    ("password", "Senha", "Password"),
    ("login_button", "Entrar", "Log in"),
    ("login_failed", "E-mail ou senha incorretos.", "Wrong e-mail or password."),
    ("login_throttled", "Muitas tentativas. Tente de novo em instantes.", "Too many attempts. Try again shortly."),
    ("forbidden_title", "Acesso negado", "Forbidden"),
    (
        "csrf_failed",
        "O formulário expirou ou não veio desta página. Recarregue e tente de novo.",
        "The form expired or did not come from this page. Reload and try again.",
    ),
    ("signed_in_as", "Conectado como", "Signed in as"),
    ("period", "Período", "Period"),
    ("last_7_days", "Últimos 7 dias", "Last 7 days"),
    ("last_30_days", "Últimos 30 dias", "Last 30 days"),
    ("apply", "Aplicar", "Apply"),
    ("active_users", "Usuários ativos", "Active users"),
    (
        "active_users_def",
        "Usuários distintos com pelo menos uma ação registrada (entrada no painel) no período.",
        "Distinct users with at least one recorded action (a dashboard login) in the period.",
    ),
    ("messages_sent", "Mensagens enviadas (24 h)", "Messages sent (24 h)"),
    (
        "messages_sent_def",
        "Mensagens de saída registradas nas últimas 24 horas, por pessoas e automações; tendência contra as 24 horas anteriores.",
        "Outbound messages stored in the last 24 hours, by people and automation; trend against the 24 hours before.",
    ),
    ("conversion", "Taxa de conversão", "Conversion rate"),
    (
        "conversion_def",
        "Dos contatos criados no período, a parcela que está no estágio cliente (ganho).",
        "Of the contacts created in the period, the share now in the customer (won) stage.",
    ),
    ("response_time", "Tempo médio de resposta", "Average response time"),
    (
        "response_time_def",
        "Da primeira mensagem recebida ainda sem resposta até a próxima mensagem enviada na mesma conversa; mensagens sem resposta ficam de fora.",
        "From the first unanswered inbound message to the next outbound message in the same thread; unanswered messages are left out.",
    ),
    ("bot_efficiency", "Eficiência do robô", "Bot efficiency"),
    (
        "bot_efficiency_def",
        "Das conversas com mensagem recebida no período, a parcela respondida só por automação, sem resposta humana.",
        "Of the threads with an inbound message in the period, the share answered by automation only, with no human reply.",
    ),
    ("no_data", "sem dados", "no data"),
    ("vs_previous", "vs. período anterior", "vs. previous period"),
    ("definition", "Definição", "Definition"),
    ("chart_messages", "Mensagens por dia", "Messages per day"),
    ("inbound", "Recebidas", "Inbound"),
    ("outbound", "Enviadas", "Outbound"),
    ("day", "Dia", "Day"),
    ("chart_funnel", "Funil de leads por estágio", "Lead funnel by stage"),
    ("stage", "Estágio", "Stage"),
    ("count", "Quantidade", "Count"),
    ("search", "Buscar", "Search"),
    ("search_hint", "Nome, telefone ou e-mail", "Name, phone or e-mail"),
    ("tag", "Etiqueta", "Tag"),
    ("any", "Qualquer", "Any"),
    ("min_score", "Pontuação mínima", "Minimum score"),
    ("name", "Nome", "Name"),
    ("phone", "Telefone", "Phone"),
    ("score", "Pontuação", "Score"),
    ("tags", "Etiquetas", "Tags"),
    ("no_contacts", "Nenhum contato encontrado.", "No contacts found."),
    ("next_page", "Próxima página", "Next page"),
    ("stage_new", "Novo", "New"),
    ("stage_contacted", "Contatado", "Contacted"),
    ("stage_qualified", "Qualificado", "Qualified"),
    ("stage_proposal", "Proposta", "Proposal"),
    ("stage_negotiation", "Negociação", "Negotiation"),
    ("stage_won", "Cliente (ganho)", "Customer (won)"),
    ("stage_lost", "Perdido", "Lost"),
    ("minutes", "min", "min"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_supported_language_and_defaults_to_portuguese() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR, en;q=0.5, pt-BR;q=0.8"), Lang::PtBr);
        assert_eq!(Lang::from_accept_language("de, fr;q=0.5"), Lang::PtBr);
        assert_eq!(Lang::from_accept_language(""), Lang::PtBr);
    }

    #[test]
    fn both_languages_have_every_key_and_no_blank() {
        let (pt, en) = (Lang::PtBr.strings(), Lang::En.strings());
        assert_eq!(pt.len(), STRINGS.len(), "a key is listed twice");
        assert_eq!(pt.keys().collect::<Vec<_>>(), en.keys().collect::<Vec<_>>());
        assert!(pt.values().chain(en.values()).all(|s| !s.trim().is_empty()));
        assert_eq!(pt["logout"], "Sair");
        assert_eq!(en["logout"], "Log out");
    }
}
