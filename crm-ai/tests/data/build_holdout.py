# Writes holdout.jsonl: 60 more messages written after the lexicon was
# tuned on sentiment.jsonl, never used to tune it (the honest figure).
import json
P, N, U = "positive", "negative", "neutral"
rows = []
def add(label, lang, items):
    for it in items:
        text, tags = (it[0], list(it[1:])) if isinstance(it, tuple) else (it, [])
        rows.append({"text": text, "label": label, "lang": lang, "tags": tags})
add(P, "pt", [
    "Moça, o kit presente ficou um charme, minha sogra adorou",
    "Pedido entregue direitinho, obrigado pela agilidade",
    ("Cês mandaram muito bem no cardápio novo", "slang"),
    "Fiquei encantada com o atendimento da Júlia",
    ("Não demorou nada, chegou antes do que eu imaginava", "negation"),
    "Comprei pela primeira vez e gostei bastante",
    ("Que bolo lindo 😍 todo mundo perguntou de onde era", "emoji"),
    "Sempre caprichando, por isso volto sempre",
    "A cliente que indiquei também amou",
    ("Sem palavras, ficou incrível", "negation"),
    "Obrigada por trocar tão rápido o tamanho",
    "Gostoso demais o pão de mel",
    "Entrega pontual e o motoboy super gentil",
    ("Valeu mesmo, vcs são feras", "slang"),
])
add(P, "en", [
    "The birthday cake was a hit, thanks so much",
    "Super fast shipping and great packaging",
    ("Can't believe how good this is", "negation"),
    "Thank you for being so patient with me",
    "Everything was delicious, we loved it",
    ("Honestly the best order I've made this year 🙌", "emoji"),
])
add(N, "pt", [
    "Vim buscar e o pedido nem estava pronto",
    "Paguei por 12 docinhos e vieram 10",
    ("Demora absurda, mais de uma hora esperando", "slang"),
    "O cabelo ficou horrível, não era o que pedi",
    ("Não atendem o telefone e não respondem aqui", "negation"),
    "A blusa desbotou na primeira lavagem",
    ("Que maravilha, pagar frete e receber errado", "irony"),
    "Estou há três dias sem resposta sobre a troca",
    "Veio mofado, joguei fora",
    ("Nunca vi um atendimento tão ruim", "negation"),
    "O motoboy não achou o endereço e voltou com tudo",
    ("Sério que esqueceram o refrigerante de novo?", "slang"),
    "Cobraram um valor diferente do combinado",
    "Fiquei muito chateado com a grosseria",
])
add(N, "en", [
    "Half of my order is missing",
    "The cupcakes were dry and tasteless",
    ("Not what I ordered, again", "negation"),
    "Still no refund after two weeks",
    ("Oh great, another delay", "irony"),
    "The driver was rude and threw the bag",
])
add(U, "pt", [
    "Vocês fazem entrega aos domingos?",
    "Qual o valor do kit com 20 brigadeiros?",
    "Posso retirar depois das 18h?",
    "Queria saber se tem a sandália no 37",
    "Vou querer o combo 2, sem cebola",
    ("Não sei se prefiro o de chocolate ou o de limão", "negation"),
    "Me passa a chave pix, por favor",
    "Já fiz o pagamento, segue o comprovante",
    "Qual o prazo para entregar em Osasco?",
    "Tem como dividir em 3 vezes?",
    ("Blz, amanhã cedo eu passo aí", "slang"),
    "Pode colocar uma vela de número 5?",
    "Vocês têm loja física?",
    "O pedido é no nome da Renata",
])
add(U, "en", [
    "Do you have this in blue?",
    "Can I pick up after 6pm?",
    "What's the minimum order for delivery?",
    ("Not sure yet, I'll let you know tomorrow", "negation"),
    "Please send me the payment link",
    "Is the bakery open on holidays?",
])
with open("holdout.jsonl", "w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
from collections import Counter
print(len(rows), Counter(r["label"] for r in rows))
