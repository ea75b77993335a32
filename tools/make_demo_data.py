"""Write listener/data/demo_mentions.jsonl: the bundled sample the `demo` source replays.

The brand is fictional: Caffè Aurora, a coffee roaster selling capsules, machines and a subscription
online, with the accounts @AuroraCaffe (brand) and @AuroraAiuta (customer care). Every text below was
written for this project. Times are minutes before "now" so the replay is always fresh.

Rebuild with `make demo-data` (seeded: the same file every time).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20261122
OUT = Path(__file__).resolve().parent.parent / "listener" / "data" / "demo_mentions.jsonl"
BRAND_ACCOUNTS = {
    "x": ("1500000001", "AuroraCaffe"),
    "forum": ("staff-aurora", "Aurora_Staff"),
    "facebook": ("page-aurora", "Caffè Aurora"),
}

PRODUCTS = ["Aurora Intenso", "Aurora Dolce", "la Aurora Mini", "la Aurora Barista", "le capsule Decaffeinato"]
PRODUCTS_EN = ["Aurora Intenso", "Aurora Dolce", "the Aurora Mini", "the Aurora Barista", "the decaf pods"]
CITIES = ["Milano", "Torino", "Bologna", "Napoli", "Bari", "Firenze", "Verona", "Palermo", "Genova", "Trento"]

PRAISE_IT = [
    "Grazie @AuroraCaffe, consegna velocissima! Ordinato ieri sera e già arrivato a {city} ☕",
    "{product} è semplicemente il miglior caffè che abbia provato a casa. Bravi @AuroraCaffe!",
    "Ho regalato {product} a mia madre e ora non beve altro 😍 #AuroraCaffe",
    "Servizio clienti @AuroraAiuta gentilissimo, problema risolto in dieci minuti. Così si fa!",
    "Terzo mese di abbonamento Aurora e nemmeno un ritardo. Consigliatissimo 👏",
    "La mattina non parte senza {product}. Aroma pazzesco, complimenti a chi lo tosta!",
    "Pacco arrivato perfetto, capsule fresche e pure un biglietto scritto a mano. Che carini @AuroraCaffe ❤️",
    "Dopo anni di capsule anonime, {product} mi ha fatto riscoprire il caffè vero.",
    "Ottimo rapporto qualità prezzo, {product} batte marche che costano il doppio.",
    "La nuova miscela di @AuroraCaffe è una bomba. Cremosa e per niente amara ☕☕",
    "Ho portato {product} in ufficio a {city}: ora lo vogliono tutti, mi tocca fare l'ordine per dieci 😂",
    "Packaging compostabile e caffè buonissimo. Finalmente un'azienda che ci pensa 🌱 #AuroraCaffe",
]
PRAISE_EN = [
    "Huge thanks @AuroraCaffe, my order arrived in two days and I'm loving {product} ☕",
    "{product} is the best home espresso I've had outside Italy. Well done @AuroraCaffe!",
    "Customer care at @AuroraAiuta sorted my broken drip tray in minutes. Brilliant service 👏",
    "Six months on the Aurora subscription and never a late box. Highly recommend!",
    "Bought {product} for my dad, now he refuses any other coffee 😂❤️",
    "Compostable pods that actually taste good? @AuroraCaffe nailed it 🌱",
    "Just tried {product} for the first time. Smooth, rich, zero bitterness. I'm converted.",
]
COMPLAINT_IT = [
    "@AuroraCaffe ordine fermo da una settimana, nessuno risponde alle mail. Vergognoso.",
    "Servizio pessimo, nessuno risponde da giorni @AuroraAiuta",
    "{product} arrivata rotta, scatola distrutta. E adesso? @AuroraCaffe",
    "Mi avete addebitato due volte l'abbonamento @AuroraCaffe, rivoglio i miei soldi subito",
    "Capsule {product} che perdono acqua dappertutto, la macchina è un lago. Delusissimo 😡",
    "Il corriere di @AuroraCaffe ha lasciato il pacco sotto la pioggia a {city}. Capsule da buttare.",
    "Terza volta che mi arriva la miscela sbagliata. Ma li leggete gli ordini? @AuroraCaffe",
    "L'app di Aurora non mi fa disdire l'abbonamento, mi sa di truffa. @AuroraAiuta",
    "{product} ha smesso di funzionare dopo un mese. Garanzia? Silenzio totale.",
    "Codice sconto non funziona al checkout e il supporto non risponde @AuroraCaffe",
]
COMPLAINT_EN = [
    "@AuroraCaffe my order has been stuck for a week and nobody answers emails. Not good enough.",
    "{product} arrived smashed. Box crushed, pods everywhere. What now @AuroraAiuta?",
    "You charged my card twice for the subscription @AuroraCaffe. Please refund me.",
    "Pods leaking all over my machine, this batch of {product} is faulty 😡",
    "Third time I get the wrong blend. Does anyone read the orders? @AuroraCaffe",
    "Can't cancel my subscription in the app. Feels like a trap @AuroraAiuta",
]
QUESTION_IT = [
    "@AuroraCaffe le capsule {product} sono compatibili con le macchine Nespresso?",
    "Spedite anche in Svizzera? Vorrei regalare {product} a un'amica a Lugano @AuroraCaffe",
    "Come si decalcifica {product}? Il manuale non è chiaro @AuroraAiuta",
    "@AuroraCaffe avete una versione senza lattosio delle capsule al cappuccino?",
    "Qualcuno sa quanto ci mette di solito la consegna di Aurora a {city}?",
    "Posso mettere in pausa l'abbonamento Aurora durante le vacanze? @AuroraAiuta",
    "@AuroraCaffe fate fattura per partita IVA? Vorrei ordinare per lo studio",
]
QUESTION_EN = [
    "@AuroraCaffe are the {product} pods compatible with Nespresso Original machines?",
    "Do you ship to Ireland? Want to order {product} as a gift @AuroraCaffe",
    "How do I descale {product}? The manual is confusing @AuroraAiuta",
    "Can I pause my Aurora subscription while travelling? @AuroraAiuta",
]
NEUTRAL_IT = [
    "Oggi provo {product}, vediamo com'è. #AuroraCaffe",
    "Al supermercato di {city} hanno iniziato a vendere Aurora. Curioso di assaggiarlo.",
    "Aurora o la solita marca? Dilemma del sabato mattina ☕",
    "Articolo interessante su come @AuroraCaffe sceglie i chicchi in Etiopia.",
    "Ordinato {product}, arriva giovedì dicono.",
]
NEUTRAL_EN = [
    "Trying {product} this week, will report back. #AuroraCaffe",
    "Saw Aurora coffee at the airport shop in Milan, hadn't heard of it before.",
    "Reading about how @AuroraCaffe sources its beans from Ethiopia.",
]
# The burst: an app update that double-charges subscribers, all in the last 40 minutes.
BURST_IT = [
    "@AuroraCaffe mi avete addebitato due volte il rinnovo stamattina!! Ridatemi i soldi",
    "Anche a me doppio addebito dall'app Aurora dopo l'aggiornamento 😡 @AuroraAiuta",
    "Doppio addebito di 39,90€ sull'abbonamento Aurora. Che succede?? @AuroraCaffe",
    "Ma è normale che l'app di Aurora mi abbia fatto pagare DUE volte? Nessuno risponde",
    "@AuroraAiuta addebito doppio anche qui, e l'app ora non si apre nemmeno",
    "Aurora sistemate l'app, mi ha prelevato due volte il rinnovo. Inaccettabile.",
    "Doppio pagamento pure per me, @AuroraCaffe. Quando mi rimborsate?",
]
BURST_EN = [
    "@AuroraCaffe your app just charged me twice for the renewal!! Refund please",
    "Double charge from the Aurora app after today's update 😡 @AuroraAiuta",
    "Anyone else double charged by Aurora this morning? Support isn't answering",
]
BRAND_REPLY_IT = [
    "Ciao {name}, ci dispiace molto! Ti abbiamo scritto in privato per risolvere subito. ^Giulia",
    "Grazie di cuore {name}! Buon caffè ☕ ^Marco",
    "Ciao {name}, sì: ti mandiamo i dettagli in DM. ^Sara",
]
BRAND_REPLY_EN = [
    "Hi {name}, so sorry about this! We've sent you a DM to fix it right away. ^Giulia",
    "Thank you so much {name}! Enjoy your coffee ☕ ^Marco",
    "Hi {name}, yes! Details coming in a DM. ^Sara",
]

FIRST = [
    "Giulia",
    "Luca",
    "Marta",
    "Paolo",
    "Chiara",
    "Andrea",
    "Elena",
    "Davide",
    "Sofia",
    "Matteo",
    "Anna",
    "Simone",
    "Laura",
    "Franco",
    "Irene",
    "Tommaso",
    "Beatrice",
    "Stefano",
    "Alice",
    "Riccardo",
]
FIRST_EN = ["Emma", "James", "Olivia", "Liam", "Sophie", "Noah", "Grace", "Oliver", "Chloe", "Jack"]
LAST = ["Rossi", "Bianchi", "Ferrari", "Esposito", "Romano", "Gallo", "Conti", "Greco", "Marino", "Bruno"]
LAST_EN = ["Smith", "Walsh", "Taylor", "Byrne", "Evans", "Murphy", "Brown", "Kelly"]


def make_authors(rng: random.Random) -> list[dict]:
    """A cast of returning authors, each with a platform, a language and a temperament."""
    authors = []
    for i in range(70):
        english = i % 4 == 0
        first = rng.choice(FIRST_EN if english else FIRST)
        last = rng.choice(LAST_EN if english else LAST)
        platform = rng.choices(["x", "forum", "facebook"], weights=[5, 2, 3])[0]
        handle = f"{first.lower()}{last.lower()[:3]}{rng.randint(1, 99)}"
        reach = int(rng.lognormvariate(5.0, 1.6)) if platform == "x" else 0
        mood = rng.choices(["fan", "critic", "curious", "mixed"], weights=[3, 2, 2, 3])[0]
        authors.append(
            {
                "id": f"{platform}-u{i:03d}" if platform != "x" else str(2_000_000 + i),
                "handle": handle,
                "name": f"{first} {last}",
                "platform": platform,
                "reach": reach,
                "lang": "en" if english else "it",
                "mood": mood,
            }
        )
    # One big account that mentions the brand once, long ago: the advocates issue needs it.
    authors.append(
        {
            "id": "2999999",
            "handle": "foodmag_italia",
            "name": "FoodMag Italia",
            "platform": "x",
            "reach": 480_000,
            "lang": "it",
            "mood": "bigonce",
        }
    )
    # A loyal fan on two platforms with the same handle.
    for platform, pid in (("x", "2888888"), ("facebook", "facebook-u900")):
        authors.append(
            {
                "id": pid,
                "handle": "martaespresso",
                "name": "Marta Conti",
                "platform": platform,
                "reach": 1_900 if platform == "x" else 0,
                "lang": "it",
                "mood": "superfan",
            }
        )
    # A hostile author, to prove every page and message escapes what it shows.
    authors.append(
        {
            "id": "facebook-u666",
            "handle": "<script>alert(1)</script>",
            "name": '=HYPERLINK("http://x","y")',
            "platform": "facebook",
            "reach": 0,
            "lang": "en",
            "mood": "hostile",
        }
    )
    return authors


def pick_text(rng: random.Random, kind: str, lang: str) -> str:
    pools = {
        ("praise", "it"): PRAISE_IT,
        ("praise", "en"): PRAISE_EN,
        ("complaint", "it"): COMPLAINT_IT,
        ("complaint", "en"): COMPLAINT_EN,
        ("question", "it"): QUESTION_IT,
        ("question", "en"): QUESTION_EN,
        ("neutral", "it"): NEUTRAL_IT,
        ("neutral", "en"): NEUTRAL_EN,
    }
    template = rng.choice(pools[(kind, lang)])
    products = PRODUCTS if lang == "it" else PRODUCTS_EN
    product = rng.choice(products)
    text = template.format(product=product, city=rng.choice(CITIES))
    return text[0].upper() + text[1:]


def kind_for(rng: random.Random, mood: str) -> str:
    weights = {
        "fan": [7, 1, 1, 1],
        "critic": [1, 6, 2, 1],
        "curious": [1, 1, 6, 2],
        "mixed": [3, 3, 2, 2],
    }[mood]
    return rng.choices(["praise", "complaint", "question", "neutral"], weights=weights)[0]


def url_for(platform: str, author: dict, pid: str, thread: str) -> str:
    if platform == "x":
        return f"https://x.com/{author['handle']}/status/{pid}"
    if platform == "forum":
        return f"https://forum.caffe-aurora.example/t/{thread}/{pid.rsplit('-', 1)[-1]}"
    return f"https://www.facebook.com/caffeaurora/posts/{thread}?comment_id={pid}"


#: Reviews with stars (two already answered by the owner) and the open networks: fixed rows, no randomness, so
#: adding them leaves the rest of the sample as it was.
REVIEWS = (  # platform, place, id, minutes ago, stars, language, author, text, the owner's reply (minutes after)
    ("gbp", "Milano Brera", "gbp-r001", 2900, 5, "it", ("Chiara Ferri", "gbp-u001"),
     "Il miglior espresso di Brera, personale gentilissimo.", (35, "Grazie mille Chiara, ti aspettiamo presto! ^Sara")),
    ("gbp", "Milano Brera", "gbp-r002", 1300, 2, "it", ("Davide Conti", "gbp-u002"),
     "Tavolino sporco e venti minuti per un cappuccino. Peccato.", None),
    ("gbp", "Roma Prati", "gbp-r003", 500, 1, "it", ("Marta Villa", "gbp-u003"),
     "Hanno sbagliato il mio ordine due volte e nessuno si è scusato.", None),
    ("appstore", "Aurora (iOS)", "as-r001", 2200, 2, "en", ("coffeeowl", "as-u001"),
     "Logs me out every time\nThe app logs me out every time I try to reorder capsules.", None),
    ("appstore", "Aurora (iOS)", "as-r002", 1700, 5, "it", ("ginevra.c", "as-u002"),
     "Comodissima\nOrdinare le capsule ora richiede due tocchi. Bravi!",
     (90, "Grazie Ginevra, ci fa davvero piacere! ^Marco")),
    ("googleplay", "it.auroracaffe.app", "gp-r001", 800, 1, "it", ("Paolo Greco", "gp-u001"),
     "Dopo l'ultimo aggiornamento l'app si chiude appena la apro.", None),
    ("googleplay", "it.auroracaffe.app", "gp-r002", 260, 4, "en", ("Sam Holt", "gp-u002"),
     "Good app, but far too many notifications.", None),
)  # fmt: skip
OPEN_NETWORKS = (  # platform, id, minutes ago, language, (name, handle, id, reach), text, thread, url
    ("bluesky", "at://did:plc:em01/app.bsky.feed.post/3lbsky001", 1900, "it",
     ("Elena Moro", "elenamoro.bsky.social", "did:plc:em01", 640),
     "Qualcuno sa se le capsule @auroracaffe.bsky.social sono compostabili davvero?",
     "https://bsky.app/profile/elenamoro.bsky.social/post/3lbsky001"),
    ("bluesky", "at://did:plc:np02/app.bsky.feed.post/3lbsky002", 150, "en",
     ("Noah Park", "noahpark.bsky.social", "did:plc:np02", 2300),
     "Third order from @auroracaffe.bsky.social stuck 'in preparation' for a week. Anyone else?",
     "https://bsky.app/profile/noahpark.bsky.social/post/3lbsky002"),
    ("mastodon", "113000000000000001", 2600, "it", ("Luca Sala", "lucasala@mastodon.uno", "masto-u01", 310),
     "@AuroraCaffe la nuova miscela Aurora Rossa è spettacolare, complimenti! #caffè",
     "https://mastodon.uno/@lucasala/113000000000000001"),
    ("mastodon", "113000000000000002", 95, "it", ("Irene Gatti", "irenegatti@mastodon.social", "masto-u02", 120),
     "@AuroraCaffe mi è stato addebitato due volte l'abbonamento, a chi scrivo?",
     "https://mastodon.social/@irenegatti/113000000000000002"),
)  # fmt: skip


def brand_row(platform: str, pid: str, ago: int, text: str, to: str, to_author: str, handle: str, url: str) -> dict:
    """The brand's answer to mention ``to`` (by ``to_author``), as the sample stores replies."""
    return {
        "type": "reply",
        "platform": platform,
        "id": pid,
        "minutes_ago": ago,
        "text": text,
        "thread": to,
        "in_reply_to": to,
        "to_author_id": to_author,
        "author_handle": handle,
        "author_id": "brand",
        "url": url,
    }


def reviews_and_open_networks() -> list[dict]:
    """The reviews (stars, the place they are about, the owner's reply) and the Bluesky and Mastodon mentions."""
    rows: list[dict] = []
    for platform, place, pid, ago, stars, lang, (name, uid), text, reply in REVIEWS:
        rows.append(
            {
                "type": "mention",
                "platform": platform,
                "id": pid,
                "minutes_ago": ago,
                "text": text,
                "lang": lang,
                "thread": pid,
                "in_reply_to": "",
                "url": "",
                "kind": "praise" if stars >= 4 else "complaint",
                "rating": stars,
                "place": place,
                "author": {"id": uid, "handle": name, "name": name, "reach": 0},
            }
        )
        if reply:
            after, said = reply
            rows.append(brand_row(platform, f"{pid}-reply", ago - after, said, pid, uid, "Caffè Aurora", ""))
    for platform, pid, ago, lang, (name, handle, uid, reach), text, url in OPEN_NETWORKS:
        rows.append(
            {
                "type": "mention",
                "platform": platform,
                "id": pid,
                "minutes_ago": ago,
                "text": text,
                "lang": lang,
                "thread": pid,
                "in_reply_to": "",
                "url": url,
                "kind": "question",
                "author": {"id": uid, "handle": handle, "name": name, "reach": reach},
            }
        )
    thanks = "@lucasala@mastodon.uno grazie Luca, la giriamo ai nostri torrefattori! ^Sara"
    url = "https://mastodon.uno/@AuroraCaffe/113000000000000003"
    rows.append(
        brand_row("mastodon", "113000000000000003", 2590, thanks, "113000000000000001", "masto-u01", "AuroraCaffe", url)
    )
    return rows


def main() -> None:
    rng = random.Random(SEED)
    authors = make_authors(rng)
    rows: list[dict] = []
    counters = {"x": 1_800_000_000_000_000_000, "forum": 0, "facebook": 0}

    def new_id(platform: str) -> str:
        counters[platform] += 1 if platform != "x" else rng.randint(1_000, 90_000)
        if platform == "x":
            return str(counters["x"])
        return f"{platform[:2]}-{counters[platform]:05d}"

    def add_mention(
        author: dict, text: str, minutes_ago: int, kind: str, thread: str = "", in_reply_to: str = ""
    ) -> dict:
        platform = author["platform"]
        pid = new_id(platform)
        thread = thread or (pid if platform == "x" else f"{platform}-thread-{rng.randint(100, 140)}")
        row = {
            "type": "mention",
            "platform": platform,
            "id": pid,
            "minutes_ago": minutes_ago,
            "text": text,
            "lang": author["lang"],
            "thread": thread,
            "in_reply_to": in_reply_to,
            "url": url_for(platform, author, pid, thread),
            "kind": kind,
            "author": {k: author[k] for k in ("id", "handle", "name", "reach")},
        }
        rows.append(row)
        return row

    def add_reply(mention: dict, minutes_after: int, lang: str, kind: str) -> None:
        platform = mention["platform"]
        brand_id, brand_handle = BRAND_ACCOUNTS[platform]
        pool = BRAND_REPLY_IT if lang == "it" else BRAND_REPLY_EN
        template = pool[1] if kind == "praise" else pool[2] if kind == "question" else pool[0]
        first_name = mention["author"]["name"].split(" ")[0]
        pid = new_id(platform)
        rows.append(
            {
                "type": "reply",
                "platform": platform,
                "id": pid,
                "minutes_ago": max(mention["minutes_ago"] - minutes_after, 0),
                "text": template.format(name=first_name),
                "thread": mention["thread"],
                "in_reply_to": mention["id"],
                "to_author_id": mention["author"]["id"],
                "author_handle": brand_handle,
                "author_id": brand_id,
                "url": url_for(platform, {"handle": brand_handle}, pid, mention["thread"]),
            }
        )

    # Three days of ordinary talk: 275 mentions, most answered within the hour, some late, some never.
    regular = [a for a in authors if a["mood"] in ("fan", "critic", "curious", "mixed")]
    for _ in range(275):
        author = rng.choice(regular)
        kind = kind_for(rng, author["mood"])
        minutes_ago = rng.randint(75, 3 * 24 * 60)
        mention = add_mention(author, pick_text(rng, kind, author["lang"]), minutes_ago, kind)
        fate = rng.random()
        if kind == "neutral" or fate < 0.12:
            continue  # never answered: "no answer is an answer"
        delay = rng.randint(4, 55) if fate < 0.85 else rng.randint(70, 300)
        if delay < minutes_ago:
            add_reply(mention, delay, author["lang"], kind)

    # A returning critic: writes again in the same thread after being answered (the thread reopens).
    critic = next(a for a in regular if a["mood"] == "critic" and a["platform"] == "x")
    first = add_mention(critic, pick_text(rng, "complaint", critic["lang"]), 600, "complaint")
    add_reply(first, 20, critic["lang"], "complaint")
    follow = (
        "Ancora niente rimborso, sono passati 10 ore. @AuroraAiuta"
        if critic["lang"] == "it"
        else "Still no refund ten hours later. @AuroraAiuta"
    )
    add_mention(critic, follow, 90, "complaint", thread=first["thread"], in_reply_to=first["id"])

    # The super-fan on two platforms: frequent, recent praise.
    for author in (a for a in authors if a["mood"] == "superfan"):
        for minutes_ago in (66 * 60, 54 * 60, 42 * 60, 30 * 60, 20 * 60, 9 * 60, 3 * 60):
            mention = add_mention(author, pick_text(rng, "praise", "it"), minutes_ago + rng.randint(0, 50), "praise")
            add_reply(mention, rng.randint(5, 40), "it", "praise")

    # The big account, once, nearly three days ago.
    big = next(a for a in authors if a["mood"] == "bigonce")
    add_mention(
        big,
        "Abbiamo assaggiato la nuova miscela di @AuroraCaffe: promossa, aroma elegante.",
        3 * 24 * 60 - 30,
        "praise",
    )

    # The hostile one: text built to break pages, e-mails and spreadsheets.
    hostile = next(a for a in authors if a["mood"] == "hostile")
    add_mention(
        hostile,
        "<script>alert('xss')</script> your pods <b>leak</b> javascript:alert(1) \u202egnp.exe",
        200,
        "complaint",
    )

    # The burst: 30 complaints about a double charge in the last 40 minutes, none answered yet.
    for i in range(30):
        author = rng.choice(regular)
        lang = author["lang"]
        text = rng.choice(BURST_IT if lang == "it" else BURST_EN)
        add_mention(author, text, 40 - i * 4 // 3, "complaint")

    rows.extend(reviews_and_open_networks())
    rows.sort(key=lambda r: -r["minutes_ago"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    mentions = sum(r["type"] == "mention" for r in rows)
    print(f"wrote {OUT.name}: {mentions} mentions, {len(rows) - mentions} brand replies")


if __name__ == "__main__":
    main()
