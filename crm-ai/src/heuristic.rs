//! [`Heuristic`]: the offline assistant (the default with no API key).
//!
//! - **Sentiment**: a Portuguese and English lexicon (with WhatsApp slang,
//!   abbreviations and emoji), accents folded, intensifiers (`muito`,
//!   `super`, `very`) and negation (`não`, `nunca`, `nem`, `not`, `never`,
//!   `don't`, … flip the polarity of the next three words). Clauses after a
//!   contrast (`mas`, `porém`, `but`) weigh more, and complaint events
//!   (`atrasou`, `veio errado`, `not arrived`) weigh double, so "ótimo, mais
//!   uma vez atrasou" reads negative. Below a margin it says neutral.
//! - **Lead signals**: weighted keyword intents, interest from the intent,
//!   urgency from time words (`hoje`, `agora`, `urgente`, `today`, `asap`).
//! - **Drafts**: templates per intent, tone and language (Portuguese unless
//!   the context asks for another language, then English).
//! - **Summaries**: the number of messages, the intent and sentiment, the
//!   last customer message, next steps per intent.
//!
//! Its accuracy on the project's labelled set is in `BENCHMARKS.md`.

use async_trait::async_trait;

use crm_core::domain::assistant::{
    Answer, BusinessContext, Conversation, DraftRequest, Intent, LeadSignals, Level, Sentiment, SentimentScore,
    Speaker, Summary, TokenUsage, Tone, check_text,
};
use crm_core::{AccountId, Assistant, Result};

/// The model name heuristic answers carry.
pub const HEURISTIC_MODEL: &str = "heuristic";

/// The offline assistant: lexicon sentiment, keyword intents, template drafts.
#[derive(Debug, Clone, Default)]
pub struct Heuristic;

impl Heuristic {
    /// A heuristic assistant.
    pub fn new() -> Self {
        Heuristic
    }
}

fn answer<T>(value: T) -> Answer<T> {
    Answer::new(value, HEURISTIC_MODEL, TokenUsage::default())
}

#[async_trait]
impl Assistant for Heuristic {
    fn name(&self) -> &str {
        "heuristic"
    }

    async fn draft_reply(&self, _account: AccountId, request: &DraftRequest) -> Result<Answer<String>> {
        request.validate()?;
        Ok(answer(draft(request)))
    }

    async fn classify_sentiment(&self, _account: AccountId, text: &str) -> Result<Answer<SentimentScore>> {
        check_text("text", text)?;
        Ok(answer(sentiment(text)))
    }

    async fn lead_signals(&self, _account: AccountId, conversation: &Conversation) -> Result<Answer<LeadSignals>> {
        conversation.validate()?;
        Ok(answer(signals(conversation)))
    }

    async fn summarize(
        &self,
        _account: AccountId,
        conversation: &Conversation,
        context: &BusinessContext,
    ) -> Result<Answer<Summary>> {
        conversation.validate()?;
        context.validate()?;
        Ok(answer(summarize(conversation, context)))
    }
}

// ----- text normalisation --------------------------------------------------------

/// Lower case, accents folded (`não` → `nao`), apostrophes dropped
/// (`don't` → `dont`).
pub fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| *c != '\'' && *c != '’')
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            other => other,
        })
        .collect()
}

/// Folded words and emoji, in order.
fn tokens(text: &str) -> Vec<String> {
    let folded = fold(text);
    let mut out = Vec::new();
    let mut word = String::new();
    for c in folded.chars() {
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if is_emoji(c) || matches!(c, ',' | '.' | ';' | '!' | '?') {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn is_emoji(c: char) -> bool {
    let n = c as u32;
    (0x1F300..=0x1FAFF).contains(&n) || (0x2600..=0x27BF).contains(&n)
}

// ----- sentiment -------------------------------------------------------------------

/// Word polarity: positive above zero. Folded forms.
fn polarity(word: &str) -> f32 {
    match word {
        // Portuguese, positive
        "bom" | "boa" | "bons" | "boas" | "gostei" | "gosto" | "gostou" | "gostamos" | "legal" | "bonito"
        | "bonita" | "lindo" | "linda" | "lindos" | "lindas" | "gostoso" | "gostosa" | "delicia" | "delicioso"
        | "deliciosa" | "obrigado" | "obrigada" | "obg" | "brigado" | "brigada" | "valeu" | "vlw" | "agradeco"
        | "grato" | "grata" | "satisfeito" | "satisfeita" | "feliz" | "felizes" | "certinho" | "rapido" | "rapida"
        | "rapidinho" | "recomendo" | "atencioso" | "atenciosa" | "caprichado" | "caprichou" | "elogiar"
        | "parabens" | "top" | "show" | "massa" | "daora" | "dahora" | "tmj" | "amo" | "amei" | "adoro" | "adorei"
        | "adoramos" | "funcionou" | "resolvido" | "resolveu" | "qualidade" | "fresquinho" | "fresquinha" | "macio"
        | "cheiroso" | "bem" | "sucesso" | "incrivel" | "sensacional" | "confiavel" | "pontual" | "educado"
        | "educada" | "simpatico" | "simpatica" | "fofo" | "fofa" | "salvou" | "voltarei" | "virei" | "melhor"
        | "arrasaram" | "arrasou" | "saboroso" | "saborosa" | "surpreendeu" | "funciona" | "confiar" => 1.0,
        "otimo" | "otima" | "excelente" | "perfeito" | "perfeita" | "maravilhoso" | "maravilhosa" | "maravilha"
        | "amamos" | "apaixonada" | "apaixonado" | "brabo" | "braba" | "nota10" | "impecavel" | "espetacular"
        | "divino" | "divina" | "fantastico" | "fantastica" => 1.6,
        // English, positive
        "worth" | "good" | "great" | "nice" | "love" | "loved" | "like" | "liked" | "thanks" | "thank" | "thx"
        | "ty" | "happy" | "fast" | "quick" | "recommend" | "beautiful" | "delicious" | "tasty" | "fresh"
        | "helpful" | "kind" | "glad" | "pleased" | "satisfied" | "works" | "worked" | "fixed" | "cool" | "well"
        | "smooth" | "friendly" | "on-time" | "reliable" | "appreciate" | "appreciated" | "yummy" | "cute" => 1.0,
        "excellent" | "amazing" | "awesome" | "perfect" | "fantastic" | "wonderful" | "best" | "outstanding"
        | "superb" | "lovely" | "brilliant" => 1.6,
        // emoji
        "😍" | "❤" | "🥰" | "😊" | "👏" | "👍" | "🙏" | "😁" | "😀" | "😃" | "🤩" | "💯" | "✨" | "🎉" | "💖"
        | "💕" | "😋" | "🤗" | "🥳" | "💙" | "💚" | "💜" => 1.0,
        // Portuguese, negative
        "ruim" | "ruins" | "mal" | "demora" | "demorou" | "demorando" | "demorado" | "atraso" | "atrasado"
        | "atrasada" | "atrasou" | "errado" | "errada" | "quebrado" | "quebrada" | "quebrou" | "estragado"
        | "estragada" | "estragou" | "frio" | "fria" | "caro" | "defeito" | "problema" | "problemas" | "reclamar"
        | "reclamacao" | "decepcionado" | "decepcionada" | "decepcao" | "chateado" | "chateada" | "triste"
        | "insatisfeito" | "insatisfeita" | "faltando" | "faltou" | "falta" | "sumiu" | "perdido" | "perdeu"
        | "nunca" | "ninguem" | "grosso" | "grossa" | "mentira" | "enganado" | "enganada" | "cancelar"
        | "reembolso" | "estorno" | "devolver" | "devolucao" | "zoado" | "zoada" | "aff" | "affs" | "afff" | "pior"
        | "piorou" | "sujo" | "suja" | "amassado" | "amassada" | "vazando" | "vazou" | "murcho" | "duro"
        | "salgado" | "azedo" | "azeda" | "cansado" | "cansada" | "esperando" | "esquecido" | "esqueceram"
        | "ignorando" | "ignorada" | "ignorado" | "torto" | "enganaram" | "demoraram" | "odio" | "piada"
        | "descaso" | "vergonha" | "prejuizo" | "raiva" | "palhacada" | "sacanagem" | "roubada" | "furada" | "paia"
        | "mico" | "nojo" | "nojento" | "bravo" | "brava" => -1.0,
        "pessimo" | "pessima" | "horrivel" | "lixo" | "porcaria" | "absurdo" | "absurda" | "odiei" | "odeio"
        | "nojenta" | "merda" | "bosta" | "pqp" | "vsf" | "golpe" | "golpista" | "ladrao" | "ladroes" | "procon"
        | "reclameaqui" | "desrespeito" | "inaceitavel" | "ridiculo" | "ridicula" | "terrivel" | "humilhante" => -1.6,
        // English, negative
        "bad" | "late" | "delay" | "delayed" | "wrong" | "broken" | "broke" | "damaged" | "cold" | "expensive"
        | "problem" | "issue" | "complaint" | "disappointed" | "disappointing" | "sad" | "unhappy" | "missing"
        | "lost" | "rude" | "refund" | "cancel" | "slow" | "waiting" | "never" | "nobody" | "dirty" | "stale"
        | "soggy" | "annoyed" | "angry" | "upset" | "frustrated" | "frustrating" | "ignored" | "ugh" | "meh"
        | "leaking" | "spoiled" | "overpriced" | "mess" | "worse" | "poor" | "sucks" | "sucked" | "ignoring"
        | "sick" => -1.0,
        "terrible" | "awful" | "horrible" | "worst" | "disgusting" | "hate" | "hated" | "scam" | "ridiculous"
        | "unacceptable" | "garbage" | "trash" | "useless" | "pathetic" => -1.6,
        "😡" | "😠" | "😤" | "👎" | "😢" | "😭" | "💩" | "🤬" | "😞" | "😒" | "🙄" | "😩" | "😫" | "😔" | "🤢" => {
            -1.0
        }
        _ => 0.0,
    }
}

/// Phrases whose polarity beats their words (folded, matched on word boundaries).
const PHRASES: &[(&str, f32)] = &[
    ("nao chegou", -2.0),
    ("ainda nao chegou", -2.0),
    ("nada ainda", -1.5),
    ("ate agora nada", -2.0),
    ("ate agora", -0.8),
    ("nunca mais", -2.0),
    ("veio errado", -2.0),
    ("veio faltando", -2.0),
    ("chegou quebrado", -2.0),
    ("chegou frio", -2.0),
    ("mais uma vez", -0.8),
    ("de novo", -0.6),
    ("sem resposta", -1.6),
    ("ninguem responde", -2.0),
    ("ninguem me responde", -2.0),
    ("quero meu dinheiro", -2.0),
    ("nao recomendo", -2.0),
    ("deixou a desejar", -2.0),
    ("to esperando", -1.2),
    ("estou esperando", -1.2),
    ("cade meu", -1.5),
    ("cade o meu", -1.5),
    ("cade a minha", -1.5),
    ("cade minha", -1.5),
    ("que beleza", 0.0),
    ("muito obrigado", 1.0),
    ("deu certo", 1.5),
    ("super recomendo", 1.5),
    ("chegou certinho", 2.0),
    ("chegou rapidinho", 2.0),
    ("melhor loja", 2.0),
    ("melhor bolo", 2.0),
    ("never arrived", -2.0),
    ("still waiting", -2.0),
    ("not arrived", -2.0),
    ("hasnt arrived", -2.0),
    ("didnt arrive", -2.0),
    ("wrong order", -2.0),
    ("no answer", -1.6),
    ("no reply", -1.6),
    ("nobody answers", -2.0),
    ("again", -0.4),
    ("want my money back", -2.0),
    ("money back", -1.5),
    ("thank you so much", 1.5),
    ("well done", 1.5),
    ("on time", 1.2),
    ("right on time", 1.5),
    ("de boa", 0.0),
    ("bom dia", 0.0),
    ("boa tarde", 0.0),
    ("boa noite", 0.0),
    ("td bem", 0.0),
    ("ta bom", 0.0),
    ("good morning", 0.0),
    ("good afternoon", 0.0),
    ("good evening", 0.0),
    ("sounds good", 0.0),
    ("quick question", 0.0),
    ("id like", 0.0),
    ("would like", 0.0),
    ("nao recebi", -2.0),
    ("nao volto", -2.0),
    ("fell apart", -2.0),
    ("no one", -1.0),
    ("nota 10", 1.5),
    ("tudo bem", 0.0),
    ("tudo certo", 0.8),
    ("all good", 1.0),
];

/// Complaint events: weigh double when they meet praise (irony).
fn is_event(word: &str) -> bool {
    matches!(
        word,
        "atrasou"
            | "atrasado"
            | "atrasada"
            | "quebrado"
            | "quebrada"
            | "errado"
            | "errada"
            | "frio"
            | "fria"
            | "faltando"
            | "faltou"
            | "demorou"
            | "late"
            | "broken"
            | "wrong"
            | "cold"
            | "missing"
            | "delayed"
            | "estragado"
            | "estragada"
            | "sumiu"
            | "esperando"
            | "waiting"
            | "again"
    )
}

fn is_negator(word: &str) -> bool {
    matches!(
        word,
        "nao"
            | "nem"
            | "jamais"
            | "sem"
            | "nenhum"
            | "nenhuma"
            | "nada"
            | "n"
            | "not"
            | "dont"
            | "didnt"
            | "doesnt"
            | "isnt"
            | "wasnt"
            | "werent"
            | "arent"
            | "wont"
            | "cant"
            | "couldnt"
            | "wouldnt"
            | "shouldnt"
            | "havent"
            | "hasnt"
            | "nothing"
            | "hardly"
    )
}

fn intensity(word: &str) -> Option<f32> {
    match word {
        "muito" | "mto" | "mt" | "super" | "bem" | "tao" | "mega" | "hiper" | "very" | "so" | "really" | "too"
        | "extremely" | "totally" => Some(1.5),
        "pouco" | "meio" | "bit" | "kinda" | "slightly" => Some(0.5),
        _ => None,
    }
}

fn is_contrast(word: &str) -> bool {
    matches!(word, "mas" | "porem" | "entretanto" | "contudo" | "but" | "however" | "though" | "although")
}

/// Sums polarities: negation flips the next three words, intensifiers scale
/// the next one, clauses after a contrast weigh 1.5×, complaint events
/// weigh double when the text also praises.
fn score(text: &str) -> (f32, usize) {
    let toks = tokens(text);
    let mut total = 0.0f32;
    let mut hits = 0usize;
    let mut negate_left = 0u8;
    let mut boost = 1.0f32;
    let mut clause_weight = 1.0f32;
    let mut last = 0.0f32;
    let has_praise = toks.iter().any(|t| polarity(t) > 0.0);
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        if let Some((len, p)) = phrase_at(&toks, i) {
            let p = if negate_left > 0 && p > 0.0 { -p } else { p };
            total += p * clause_weight;
            if p != 0.0 {
                hits += 1;
            }
            negate_left = 0;
            i += len;
            continue;
        }
        if matches!(t, "," | "." | ";" | "!" | "?") {
            negate_left = 0;
            boost = 1.0;
            i += 1;
            continue;
        }
        if is_contrast(t) {
            clause_weight = 1.5;
            total *= 0.75;
            negate_left = 0;
        } else if is_negator(t) {
            negate_left = 3;
        } else if let Some(k) = intensity(t).filter(|_| polarity(t) == 0.0 || t == "bem") {
            if t != "bem" || toks.get(i + 1).is_some_and(|n| polarity(n) != 0.0) {
                boost = k;
            } else {
                total += polarity(t) * clause_weight;
                hits += 1;
            }
        } else if t == "demais" {
            // "salgado demais" is more negative, "top demais" more positive, "demais!" praise
            total += if last < 0.0 { last * 0.5 } else { 1.0 } * clause_weight;
            hits += 1;
        } else {
            let mut p = polarity(t);
            if p != 0.0 {
                if has_praise && p < 0.0 && is_event(t) {
                    p *= 2.0;
                }
                if negate_left > 0 {
                    // "não é ruim" is mildly positive; "não gostei" negative
                    p = if p > 0.0 { -p } else { -p * 0.5 };
                }
                total += p * boost * clause_weight;
                hits += 1;
                boost = 1.0;
                last = p;
            }
            negate_left = negate_left.saturating_sub(1);
        }
        i += 1;
    }
    if toks.iter().filter(|t| t.as_str() == "!").count() >= 2 && total.abs() > 0.0 {
        total *= 1.2;
    }
    (total, hits)
}

fn phrase_at(toks: &[String], i: usize) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for (phrase, p) in PHRASES {
        let words: Vec<&str> = phrase.split(' ').collect();
        let matches = toks.len() >= i + words.len() && words.iter().zip(&toks[i..]).all(|(w, t)| *w == t.as_str());
        if matches && best.is_none_or(|(l, _)| words.len() > l) {
            best = Some((words.len(), *p));
        }
    }
    best
}

/// The heuristic's sentiment of a text.
pub fn sentiment(text: &str) -> SentimentScore {
    let (s, hits) = score(text);
    const MARGIN: f32 = 0.5;
    let sentiment = if s >= MARGIN {
        Sentiment::Positive
    } else if s <= -MARGIN {
        Sentiment::Negative
    } else {
        Sentiment::Neutral
    };
    let confidence = match sentiment {
        Sentiment::Neutral if hits == 0 => 0.6,
        Sentiment::Neutral => 0.4,
        _ => (0.5 + s.abs().min(4.0) / 8.0).min(0.95),
    };
    SentimentScore { sentiment, confidence }
}

// ----- intents -----------------------------------------------------------------------

/// Keywords per intent (folded), with the phrase matched on word boundaries.
const INTENT_WORDS: &[(Intent, &[&str])] = &[
    (
        Intent::Cancellation,
        &[
            "cancelar",
            "cancela",
            "cancelamento",
            "reembolso",
            "estorno",
            "devolver",
            "devolucao",
            "trocar",
            "troca",
            "dinheiro de volta",
            "cancel",
            "refund",
            "return",
            "money back",
            "desistir",
        ],
    ),
    (
        Intent::Complaint,
        &[
            "reclamar",
            "reclamacao",
            "absurdo",
            "pessimo",
            "pessima",
            "horrivel",
            "quebrado",
            "quebrada",
            "errado",
            "errada",
            "defeito",
            "estragado",
            "procon",
            "reclame aqui",
            "descaso",
            "complaint",
            "terrible",
            "awful",
            "broken",
            "wrong",
            "damaged",
            "unacceptable",
            "worst",
            "lixo",
            "vergonha",
        ],
    ),
    (
        Intent::Delivery,
        &[
            "entrega",
            "entregar",
            "entregam",
            "entregou",
            "frete",
            "chegou",
            "chega",
            "chegar",
            "rastreio",
            "rastreamento",
            "envio",
            "enviou",
            "enviar",
            "correios",
            "motoboy",
            "delivery",
            "shipping",
            "tracking",
            "arrive",
            "arrived",
            "deliver",
            "delivered",
            "cade meu",
            "cade o meu",
            "cade minha",
            "cade a minha",
        ],
    ),
    (
        Intent::Purchase,
        &[
            "quero",
            "queria",
            "comprar",
            "compra",
            "pedido",
            "pedir",
            "encomendar",
            "encomenda",
            "reservar",
            "reserva",
            "fechar",
            "vou levar",
            "pode separar",
            "separa",
            "manda",
            "me ve",
            "buy",
            "order",
            "ill take",
            "want",
            "purchase",
            "book",
            "reserve",
            "gostaria de",
        ],
    ),
    (
        Intent::PriceInquiry,
        &[
            "preco",
            "precos",
            "quanto",
            "valor",
            "valores",
            "custa",
            "desconto",
            "promocao",
            "pix",
            "parcelar",
            "parcela",
            "cartao",
            "boleto",
            "orcamento",
            "price",
            "cost",
            "how much",
            "discount",
            "pay",
            "payment",
        ],
    ),
    (
        Intent::ProductInquiry,
        &[
            "tem",
            "tem ai",
            "disponivel",
            "tamanho",
            "tamanhos",
            "cor",
            "cores",
            "estoque",
            "sabor",
            "sabores",
            "cardapio",
            "catalogo",
            "modelo",
            "available",
            "size",
            "stock",
            "do you have",
            "menu",
            "flavor",
            "colors",
        ],
    ),
    (
        Intent::Support,
        &[
            "ajuda",
            "ajudar",
            "problema",
            "nao funciona",
            "duvida",
            "como faco",
            "como faz",
            "help",
            "issue",
            "problem",
            "not working",
            "how do i",
            "suporte",
            "support",
        ],
    ),
    (
        Intent::Greeting,
        &[
            "oi",
            "ola",
            "bom dia",
            "boa tarde",
            "boa noite",
            "obrigado",
            "obrigada",
            "valeu",
            "vlw",
            "tchau",
            "hi",
            "hello",
            "hey",
            "thanks",
            "thank you",
            "bye",
            "good morning",
            "e ai",
            "eai",
        ],
    ),
];

fn contains_phrase(toks: &[String], phrase: &str) -> bool {
    let words: Vec<&str> = phrase.split(' ').collect();
    toks.windows(words.len()).any(|w| w.iter().zip(&words).all(|(t, p)| t == p))
}

/// The intent of a text: the one with the most keyword hits, earlier in
/// [`INTENT_WORDS`] on a tie (cancellation and complaints before the rest).
pub fn intent(text: &str) -> (Intent, usize) {
    let toks = tokens(text);
    let mut best = (Intent::Other, 0usize);
    for (intent, words) in INTENT_WORDS {
        let hits = words.iter().filter(|w| contains_phrase(&toks, w)).count();
        // a plain greeting loses to any other intent
        let weighted = if *intent == Intent::Greeting { hits.min(1) } else { hits * 2 };
        if weighted > best.1 {
            best = (*intent, weighted);
        }
    }
    best
}

fn urgency(text: &str) -> Level {
    let toks = tokens(text);
    let high = [
        "urgente",
        "urgencia",
        "hoje",
        "agora",
        "ja",
        "rapido",
        "asap",
        "urgent",
        "today",
        "now",
        "immediately",
        "hj",
        "agr",
        "emergencia",
    ];
    let medium = ["amanha", "logo", "semana", "sabado", "domingo", "tomorrow", "soon", "weekend", "breve", "quando"];
    if high.iter().any(|w| contains_phrase(&toks, w)) || toks.iter().filter(|t| t.as_str() == "!").count() >= 3 {
        Level::High
    } else if medium.iter().any(|w| contains_phrase(&toks, w)) {
        Level::Medium
    } else {
        Level::Low
    }
}

/// The heuristic's lead signals of a conversation's customer turns (the
/// last turn's intent wins over earlier ones).
pub fn signals(conversation: &Conversation) -> LeadSignals {
    let last = conversation.last_customer_text().unwrap_or_default();
    let all = conversation.customer_text();
    let (mut main, mut hits) = intent(last);
    if main == Intent::Other || main == Intent::Greeting {
        let (earlier, h) = intent(&all);
        if h > hits {
            (main, hits) = (earlier, h);
        }
    }
    let interest = match main {
        Intent::Purchase => Level::High,
        Intent::PriceInquiry | Intent::ProductInquiry => {
            if intent(&all).0 == Intent::Purchase || contains_phrase(&tokens(&all), "quero") {
                Level::High
            } else {
                Level::Medium
            }
        }
        Intent::Delivery | Intent::Support => Level::Medium,
        _ => Level::Low,
    };
    let confidence = if hits == 0 { 0.3 } else { (0.45 + hits as f32 * 0.1).min(0.9) };
    LeadSignals { intent: main, interest, urgency: urgency(&all), confidence }
}

// ----- drafts and summaries --------------------------------------------------------------

fn first_name(conversation: &Conversation) -> Option<String> {
    conversation.contact_name.as_deref().and_then(|n| n.split_whitespace().next()).map(str::to_owned)
}

/// A reply from the templates for the last customer turn's intent.
pub fn draft(request: &DraftRequest) -> String {
    let conv = &request.conversation;
    let ctx = &request.context;
    let last = conv.last_customer_text().unwrap_or_default();
    let (intent, _) = intent(last);
    let mood = sentiment(last).sentiment;
    let name = first_name(conv);
    let pt = ctx.is_portuguese();
    let hello = match (pt, ctx.tone, &name) {
        (true, Tone::Formal, Some(n)) => format!("Olá, {n}."),
        (true, Tone::Formal, None) => "Olá.".to_string(),
        (true, _, Some(n)) => format!("Oi, {n}!"),
        (true, _, None) => "Oi!".to_string(),
        (false, Tone::Formal, Some(n)) => format!("Hello {n},"),
        (false, Tone::Formal, None) => "Hello,".to_string(),
        (false, _, Some(n)) => format!("Hi {n}!"),
        (false, _, None) => "Hi!".to_string(),
    };
    let body = match (pt, intent, mood) {
        (true, Intent::Greeting, Sentiment::Positive) => "Nós que agradecemos! Conte sempre com a gente.",
        (true, Intent::Greeting, _) => "Tudo bem? Como posso ajudar?",
        (true, Intent::Purchase, _) => {
            "Que ótimo! Vou separar seu pedido. Pode me confirmar os itens e o endereço de entrega?"
        }
        (true, Intent::PriceInquiry, _) => "Claro! Já te passo os valores. Qual produto e quantidade você quer?",
        (true, Intent::ProductInquiry, _) => {
            "Vou conferir a disponibilidade agora e já te respondo. Qual produto você procura?"
        }
        (true, Intent::Delivery, Sentiment::Negative) => {
            "Sinto muito pela demora. Vou verificar agora onde está seu pedido e já te retorno."
        }
        (true, Intent::Delivery, _) => "Vou verificar o status da sua entrega e já te retorno.",
        (true, Intent::Complaint, _) => {
            "Sinto muito pelo transtorno. Pode me contar o que aconteceu e o número do pedido? Vamos resolver o quanto antes."
        }
        (true, Intent::Cancellation, _) => "Entendi. Me passa o número do pedido que eu verifico isso para você agora.",
        (true, Intent::Support, _) => "Claro, vou te ajudar. Pode me explicar um pouco mais o que aconteceu?",
        (true, Intent::Other, Sentiment::Positive) => "Muito obrigado pela mensagem! Ficamos felizes. 😊",
        (true, Intent::Other, Sentiment::Negative) => "Sinto muito por isso. Pode me contar mais para eu te ajudar?",
        (true, Intent::Other, Sentiment::Neutral) => "Obrigado pela mensagem! Já vou verificar e te respondo.",
        (false, Intent::Greeting, Sentiment::Positive) => "Thank you! We're always here for you.",
        (false, Intent::Greeting, _) => "How can I help you today?",
        (false, Intent::Purchase, _) => {
            "Great! I'll get your order ready. Could you confirm the items and the delivery address?"
        }
        (false, Intent::PriceInquiry, _) => {
            "Sure! Which product and how many would you like? I'll send you the prices."
        }
        (false, Intent::ProductInquiry, _) => {
            "Let me check availability and get right back to you. Which product are you looking for?"
        }
        (false, Intent::Delivery, Sentiment::Negative) => {
            "I'm sorry for the delay. I'm checking where your order is right now."
        }
        (false, Intent::Delivery, _) => "I'll check your delivery status and get back to you shortly.",
        (false, Intent::Complaint, _) => {
            "I'm sorry about this. Could you tell me what happened and your order number? We'll fix it quickly."
        }
        (false, Intent::Cancellation, _) => "Understood. Please send me your order number and I'll take care of it.",
        (false, Intent::Support, _) => "Of course, I'll help. Could you tell me a bit more about what happened?",
        (false, Intent::Other, Sentiment::Positive) => "Thank you so much for your message! We're glad.",
        (false, Intent::Other, Sentiment::Negative) => "I'm sorry to hear that. Could you tell me more so I can help?",
        (false, Intent::Other, Sentiment::Neutral) => "Thanks for your message! I'll check and get back to you.",
    };
    let body = if ctx.tone == Tone::Formal { body.replace(" 😊", "") } else { body.to_string() };
    let signature = match (ctx.tone, &ctx.business_name) {
        (Tone::Formal, Some(b)) => format!("\n{b}"),
        _ => String::new(),
    };
    format!("{hello} {body}{signature}")
}

fn sentiment_word(pt: bool, s: Sentiment) -> &'static str {
    match (pt, s) {
        (true, Sentiment::Positive) => "positivo",
        (true, Sentiment::Negative) => "negativo",
        (true, Sentiment::Neutral) => "neutro",
        (false, s) => s.as_str(),
    }
}

/// A summary: counts, intent, sentiment, the last customer message, next steps.
pub fn summarize(conversation: &Conversation, context: &BusinessContext) -> Summary {
    let pt = context.is_portuguese();
    let customer = conversation.customer_text();
    let overall = if customer.is_empty() { sentiment("") } else { sentiment(&customer) };
    let s = signals(conversation);
    let inbound = conversation.turns.iter().filter(|t| t.speaker == Speaker::Customer).count();
    let last: String = conversation.last_customer_text().unwrap_or("-").chars().take(140).collect();
    let name = conversation
        .contact_name
        .clone()
        .unwrap_or_else(|| if pt { "O cliente".into() } else { "The customer".into() });
    let text = if pt {
        format!(
            "{name} enviou {inbound} de {} mensagens. Assunto: {}; sentimento {}; urgência {}. Última mensagem: \"{last}\"",
            conversation.turns.len(),
            s.intent.as_str(),
            sentiment_word(true, overall.sentiment),
            s.urgency.as_str(),
        )
    } else {
        format!(
            "{name} sent {inbound} of {} messages. Topic: {}; sentiment {}; urgency {}. Last message: \"{last}\"",
            conversation.turns.len(),
            s.intent.as_str(),
            overall.sentiment.as_str(),
            s.urgency.as_str(),
        )
    };
    let step = match (pt, s.intent) {
        (true, Intent::Purchase) => "Confirmar itens, valor e entrega do pedido",
        (true, Intent::PriceInquiry) => "Enviar preços e formas de pagamento",
        (true, Intent::ProductInquiry) => "Confirmar disponibilidade do produto",
        (true, Intent::Delivery) => "Verificar o status da entrega e informar o cliente",
        (true, Intent::Complaint) => "Tratar a reclamação e oferecer uma solução",
        (true, Intent::Cancellation) => "Verificar o cancelamento ou reembolso",
        (true, Intent::Support) => "Entender o problema e ajudar o cliente",
        (false, Intent::Purchase) => "Confirm the order's items, price and delivery",
        (false, Intent::PriceInquiry) => "Send prices and payment options",
        (false, Intent::ProductInquiry) => "Confirm product availability",
        (false, Intent::Delivery) => "Check the delivery status and update the customer",
        (false, Intent::Complaint) => "Handle the complaint and offer a fix",
        (false, Intent::Cancellation) => "Check the cancellation or refund",
        (false, Intent::Support) => "Understand the problem and help the customer",
        (_, Intent::Greeting | Intent::Other) => "",
    };
    let next_steps = if step.is_empty() { Vec::new() } else { vec![step.to_string()] };
    Summary { text, next_steps, sentiment: overall.sentiment }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_core::domain::assistant::Turn;

    #[test]
    fn negation_flips_and_irony_reads_negative() {
        assert_eq!(sentiment("Adorei o bolo, muito obrigada!").sentiment, Sentiment::Positive);
        assert_eq!(sentiment("Não gostei do atendimento").sentiment, Sentiment::Negative);
        assert_eq!(sentiment("O pedido não chegou até agora").sentiment, Sentiment::Negative);
        assert_eq!(sentiment("Ótimo, mais uma vez atrasou").sentiment, Sentiment::Negative);
        assert_eq!(sentiment("I don't like it at all").sentiment, Sentiment::Negative);
        assert_eq!(sentiment("Qual o horário de funcionamento?").sentiment, Sentiment::Neutral);
        assert_eq!(sentiment("Chegou certinho, top demais 😍").sentiment, Sentiment::Positive);
    }

    #[test]
    fn intents_and_urgency() {
        assert_eq!(intent("Quanto custa o bolo de pote?").0, Intent::PriceInquiry);
        assert_eq!(intent("Quero cancelar meu pedido e o reembolso").0, Intent::Cancellation);
        assert_eq!(intent("Cadê meu pedido? Não chegou").0, Intent::Delivery);
        assert_eq!(intent("Bom dia!").0, Intent::Greeting);
        let conv = Conversation {
            contact_name: Some("Ana Souza".into()),
            turns: vec![Turn { speaker: Speaker::Customer, text: "Quero 2 bolos pra hoje, urgente".into() }],
        };
        let s = signals(&conv);
        assert_eq!((s.intent, s.interest, s.urgency), (Intent::Purchase, Level::High, Level::High));
    }

    #[test]
    fn drafts_follow_language_and_tone() {
        let mut req = DraftRequest {
            conversation: Conversation {
                contact_name: Some("Ana Souza".into()),
                turns: vec![Turn { speaker: Speaker::Customer, text: "Quanto custa o brigadeiro?".into() }],
            },
            context: BusinessContext { business_name: Some("Doceria Flor".into()), ..Default::default() },
        };
        let pt = draft(&req);
        assert!(pt.starts_with("Oi, Ana!") && pt.contains("valores"), "{pt}");
        req.context.tone = Tone::Formal;
        req.context.language = "en".into();
        let en = draft(&req);
        assert!(en.starts_with("Hello Ana,") && en.ends_with("\nDoceria Flor"), "{en}");
    }
}
