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
        all()
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

/// Every `(key, pt-BR, en)`: the shared table and the management pages'.
fn all() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    STRINGS.iter().chain(super::strings_manage::STRINGS)
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
    ("nav_inbox", "Conversas", "Inbox"),
    ("inbox_filters", "Mostrar conversas", "Show conversations"),
    ("inbox_filter_all", "Todas", "All"),
    ("inbox_filter_mine", "Minhas", "Mine"),
    ("inbox_filter_unassigned", "Sem responsável", "Unassigned"),
    ("inbox_list", "Lista de conversas", "Conversation list"),
    ("inbox_empty", "Nenhuma conversa por aqui.", "No conversations here."),
    ("inbox_pick", "Escolha uma conversa para ler e responder.", "Pick a conversation to read and reply."),
    ("inbox_bad_request", "Esse endereço da caixa de entrada não é válido.", "That inbox address is not valid."),
    ("inbox_not_found", "Conversa não encontrada.", "Conversation not found."),
    (
        "inbox_agents_only",
        "Só agentes e administradores podem responder e atribuir conversas.",
        "Only agents and admins can reply to and assign conversations.",
    ),
    ("unread", "não lidas", "unread"),
    ("you", "Você", "You"),
    ("assigned_to", "Responsável", "Assigned to"),
    ("nobody", "Ninguém", "Nobody"),
    ("assign", "Atribuir", "Assign"),
    ("back_to_list", "Voltar às conversas", "Back to conversations"),
    ("thread_messages", "Mensagens", "Messages"),
    ("no_messages", "Ainda não há mensagens.", "No messages yet."),
    ("inbound_from", "Recebida", "Received"),
    ("outbound_by", "Enviada", "Sent"),
    ("template_label", "Modelo", "Template"),
    ("open_document", "Abrir documento", "Open document"),
    ("image_alt", "Imagem recebida", "Received image"),
    ("status_queued", "Na fila", "Queued"),
    ("status_sent", "Enviada", "Sent"),
    ("status_delivered", "Entregue", "Delivered"),
    ("status_read", "Lida", "Read"),
    ("status_failed", "Falhou", "Failed"),
    ("failed_reason", "Motivo", "Reason"),
    ("send_box", "Responder", "Reply"),
    ("message_text", "Mensagem", "Message"),
    ("send", "Enviar", "Send"),
    ("window_open_until", "Janela de atendimento de 24 horas aberta até", "24-hour customer-service window open until"),
    (
        "window_closed",
        "A janela de atendimento de 24 horas está fechada",
        "The 24-hour customer-service window is closed",
    ),
    (
        "window_closed_why",
        "O WhatsApp só aceita texto livre até 24 horas depois da última mensagem do contato. Fora dessa janela, envie um modelo aprovado; quando o contato responder, a janela abre de novo.",
        "WhatsApp accepts free text only up to 24 hours after the contact's last message. Outside that window, send an approved template; when the contact replies, the window opens again.",
    ),
    ("last_wrote", "Última mensagem do contato", "The contact last wrote"),
    ("never_wrote", "O contato nunca escreveu.", "The contact never wrote."),
    ("templates", "Modelos aprovados", "Approved templates"),
    (
        "no_templates",
        "Nenhum modelo cadastrado. Sincronize ou crie modelos pela API.",
        "No templates yet. Sync or create templates through the API.",
    ),
    ("from_contact", "em branco: usa o dado do contato", "blank: taken from the contact"),
    ("send_template", "Enviar modelo", "Send template"),
    ("send_empty", "Escreva uma mensagem antes de enviar.", "Write a message before sending."),
    (
        "send_window_closed",
        "Fora da janela de 24 horas só é possível enviar um modelo aprovado.",
        "Outside the 24-hour window only an approved template can be sent.",
    ),
    ("send_refused", "A mensagem não foi enviada:", "The message was not sent:"),
    (
        "send_failed",
        "A mensagem não pôde ser enviada agora. Tente de novo.",
        "The message could not be sent now. Try again.",
    ),
    ("read_only", "Seu acesso é só de leitura.", "Your access is read-only."),
    ("live_on", "Atualizando ao vivo", "Live updates on"),
    (
        "live_off",
        "Sem atualização ao vivo; recarregue para ver novidades.",
        "Live updates off; reload to see what is new.",
    ),
    ("times_utc", "Horários em UTC", "Times in UTC"),
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
        assert_eq!(pt.len(), all().count(), "a key is listed twice");
        assert_eq!(pt.keys().collect::<Vec<_>>(), en.keys().collect::<Vec<_>>());
        assert!(pt.values().chain(en.values()).all(|s| !s.trim().is_empty()));
        assert_eq!(pt["logout"], "Sair");
        assert_eq!(en["logout"], "Log out");
    }
}
