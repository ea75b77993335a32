"""The schema, as registered migrations applied at start-up (sqlite-utils `Migrations`).

Raw ingested columns (``mentions``, ``authors``, ``brand_replies``) live apart from what passaparola
derives (``mention_tags``, ``conversations``), so re-ingesting a mention updates what the platform said
and never clobbers sentiment, state or a person's corrections.

Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("passaparola")


@migrations()
def m001_initial(db: Database) -> None:
    db.table("authors").create(
        {
            "key": str,
            "platform": str,
            "platform_id": str,
            "handle": str,
            "display_name": str,
            "reach": int,
            "verified": int,
            "first_seen_at": str,
            "updated_at": str,
        },
        pk="key",
        not_null={"platform", "platform_id", "handle"},
    )
    db.table("mentions").create(
        {
            "key": str,
            "platform": str,
            "platform_id": str,
            "source": str,
            "author_key": str,
            "text": str,
            "url": str,
            "published_at": str,
            "thread_id": str,
            "in_reply_to": str,
            "language_hint": str,
            "metrics": str,
            "first_seen_at": str,
            "updated_at": str,
        },
        pk="key",
        not_null={"platform", "platform_id", "source", "text", "published_at"},
        foreign_keys=[("author_key", "authors", "key")],
    )
    db.table("mentions").create_index(["platform", "platform_id"], unique=True)
    db.table("mentions").create_index(["published_at"])
    db.table("mentions").create_index(["platform", "thread_id"])
    db.table("mentions").create_index(["author_key"])

    db.table("mention_tags").create(
        {
            "key": str,
            "language": str,
            "sentiment": str,
            "sentiment_probs": str,
            "model_version": str,
            "needs_answer": int,
            "needs_answer_reason": str,
            "topics": str,
            "route": str,
            "extra": str,
            "tagged_at": str,
        },
        pk="key",
        foreign_keys=[("key", "mentions", "key")],
    )
    db.table("conversations").create(
        {
            "key": str,
            "state": str,
            "state_reason": str,
            "assignee": str,
            "answered_at": str,
            "answer_key": str,
            "response_seconds": float,
            "updated_at": str,
        },
        pk="key",
        not_null={"state"},
        defaults={"state": "new"},
        foreign_keys=[("key", "mentions", "key")],
    )
    db.table("conversations").create_index(["state"])

    db.table("brand_replies").create(
        {
            "key": str,
            "platform": str,
            "platform_id": str,
            "source": str,
            "in_reply_to": str,
            "thread_id": str,
            "to_author_id": str,
            "author_handle": str,
            "text": str,
            "url": str,
            "published_at": str,
            "first_seen_at": str,
        },
        pk="key",
        not_null={"platform", "platform_id", "published_at"},
    )
    db.table("brand_replies").create_index(["platform", "in_reply_to"])
    db.table("brand_replies").create_index(["platform", "thread_id"])

    db.table("sources").create(
        {
            "name": str,
            "kind": str,
            "cursor": str,
            "last_attempt_at": str,
            "last_success_at": str,
            "consecutive_failures": int,
            "last_error": str,
            "next_retry_at": str,
            "mentions_total": int,
            "updated_at": str,
        },
        pk="name",
        defaults={"consecutive_failures": 0, "mentions_total": 0},
    )
    db.table("outbox").create(
        {
            "key": str,
            "kind": str,
            "level": str,
            "title": str,
            "body": str,
            "route": str,
            "mentions": str,
            "created_at": str,
            "attempts": int,
            "next_attempt_at": str,
            "last_attempt_at": str,
            "last_error": str,
            "sent_at": str,
        },
        pk="key",
        defaults={"attempts": 0},
    )
    db.table("outbox").create_index(["sent_at", "next_attempt_at"])
    db.table("daemon").create({"name": str, "value": str, "updated_at": str}, pk="name")


@migrations()
def m002_source_details(db: Database) -> None:
    """What a source reports about itself (reads, cost, paused streams), shown in its health."""
    db.table("sources").add_column("details", str)


@migrations()
def m003_sentiment_corrections(db: Database) -> None:
    """A person's sentiment label for a mention: wins over the model, survives reanalysis, feeds retraining."""
    db.table("sentiment_corrections").create(
        {"key": str, "label": str, "model_label": str, "corrected_by": str, "corrected_at": str},
        pk="key",
        foreign_keys=[("key", "mentions", "key")],
    )


@migrations()
def m004_triage(db: Database) -> None:
    """Triage: priority, team, deadlines, who answered, acknowledgement; members' away status; an audit trail."""
    conversations = db.table("conversations")
    for name, kind in (
        ("priority", str),
        ("team", str),
        ("target_minutes", int),
        ("warn_at", str),
        ("due_at", str),
        ("follows_key", str),
        ("answered_by", str),
        ("assigned_at", str),
        ("breach_handed_on", int),
        ("acknowledged_at", str),
        ("acknowledged_by", str),
        ("triaged_at", str),
    ):
        conversations.add_column(name, kind)
    conversations.create_index(["state", "due_at"])
    conversations.create_index(["assignee", "state"])
    db.execute("CREATE INDEX IF NOT EXISTS conversations_untriaged ON conversations(key) WHERE triaged_at IS NULL")
    db.table("member_status").create({"name": str, "away": int, "updated_by": str, "updated_at": str}, pk="name")
    db.table("conversation_events").create(
        {"id": int, "key": str, "at": str, "event": str, "member": str, "detail": str},
        pk="id",
        foreign_keys=[("key", "mentions", "key")],
    )
    db.table("conversation_events").create_index(["key", "at"])


@migrations()
def m005_inbound(db: Database) -> None:
    """Webhook bodies, verified and queued by the web app, ingested by the daemon; deduplicated by key."""
    db.table("inbound").create(
        {
            "id": int,
            "channel": str,
            "source": str,
            "dedupe_key": str,
            "body": str,
            "received_at": str,
            "processed_at": str,
            "error": str,
        },
        pk="id",
        not_null={"channel", "source", "dedupe_key", "body", "received_at"},
    )
    db.table("inbound").create_index(["dedupe_key"], unique=True)
    db.execute("CREATE INDEX IF NOT EXISTS inbound_pending ON inbound(id) WHERE processed_at IS NULL")


@migrations()
def m006_advocates(db: Database) -> None:
    """People (who may have several authors), advocate scores, offers, testimonial agreement, erasure."""
    db.table("people").create(
        {"id": int, "name": str, "opted_out": int, "opted_out_at": str, "created_at": str},
        pk="id",
        defaults={"opted_out": 0},
    )
    db.table("person_authors").create(
        {"author_key": str, "person_id": int, "linked_by": str, "linked_at": str},
        pk="author_key",
        foreign_keys=[("author_key", "authors", "key"), ("person_id", "people", "id")],
    )
    db.table("person_authors").create_index(["person_id"])
    db.table("advocate_scores").create(
        {
            "person_id": int,
            "score": float,
            "tier": str,
            "counted": int,
            "praised": str,
            "last_praise_key": str,
            "last_praise_at": str,
            "computed_at": str,
        },
        pk="person_id",
        foreign_keys=[("person_id", "people", "id")],
    )
    db.table("advocate_scores").create_index(["tier", "score"])
    db.table("offers").create(
        {"id": int, "person_id": int, "offer": str, "text": str, "sent_at": str, "sent_by": str, "used_at": str},
        pk="id",
        foreign_keys=[("person_id", "people", "id")],
    )
    db.table("offers").create_index(["person_id", "sent_at"])
    db.table("testimonial_consent").create(
        {"key": str, "agreed": int, "recorded_at": str, "recorded_by": str, "note": str},
        pk="key",
        foreign_keys=[("key", "mentions", "key")],
    )
    db.table("suppressed").create({"hash": str, "created_at": str}, pk="hash")


@migrations()
def m007_outbox_policy(db: Database) -> None:
    """Noise control: why an alert is held, the summary it was folded into, and an optional HTML body."""
    outbox = db.table("outbox")
    outbox.add_column("held_reason", str)
    outbox.add_column("folded_into", str)
    outbox.add_column("html", str)
    outbox.create_index(["route", "kind", "sent_at"])


@migrations()
def m008_search(db: Database) -> None:
    """Full-text search over mention text for the inbox (FTS5, accents folded), kept in step by triggers;
    a running count of failed polls per source for /metrics.

    The index is external-content: it stores tokens, not a second copy of the text; deletes (retention,
    erasure) remove a mention's tokens through the same triggers.
    """
    db.table("mentions").enable_fts(
        ["text"], fts_version="FTS5", create_triggers=True, tokenize="unicode61 remove_diacritics 2"
    )
    db.table("sources").add_column("failures_total", int, not_null_default=0)  # for /metrics


@migrations()
def m009_model_swaps(db: Database) -> None:
    """Every retraining attempt of the reading model, swapped in, rejected or rolled back, with both scores."""
    db.table("model_swaps").create(
        {
            "id": int,
            "action": str,
            "from_dir": str,
            "to_dir": str,
            "from_version": str,
            "to_version": str,
            "scores": str,
            "reason": str,
            "at": str,
        },
        pk="id",
        not_null={"action", "to_dir", "at"},
    )


@migrations()
def m010_outbox_targets(db: Database) -> None:
    """Delivery per destination: which URLs of its route an alert reached, so a retry never re-sends to them.

    A target is a URL in apprise's privacy form (no secrets). Rows go with their alert (erasure deletes both).
    """
    db.execute(
        """CREATE TABLE outbox_targets (
            alert_key TEXT NOT NULL REFERENCES outbox(key) ON DELETE CASCADE,
            target TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at TEXT,
            last_error TEXT,
            sent_at TEXT,
            PRIMARY KEY (alert_key, target)
        )"""
    )


@migrations()
def m011_platform_counts(db: Database) -> None:
    """Posts a platform counted per UTC hour for a source's query (X's recent counts): what the volume baseline
    reads for the hours before passaparola's own history of that source began. A re-fetched hour replaces its row.

    The index answers "when did passaparola first store a mention of this source" without reading every mention.
    """
    db.execute(
        """CREATE TABLE platform_counts (
            source TEXT NOT NULL,
            hour TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (source, hour)
        )"""
    )
    db.execute("CREATE INDEX mentions_source_first_seen ON mentions(source, first_seen_at)")


@migrations()
def m012_sessions(db: Database) -> None:
    """Log-in sessions held server-side (the id's SHA-256 only), failed log-ins per account and per client
    address (for the growing delay and the temporary lock), and passwords people changed themselves."""
    db.execute(
        """CREATE TABLE web_sessions (
            id INTEGER PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            user_name TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            revoked_at TEXT,
            revoked_reason TEXT,
            address TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT ''
        )"""
    )
    db.execute("CREATE INDEX web_sessions_user ON web_sessions(user_name) WHERE revoked_at IS NULL")
    db.execute("CREATE INDEX web_sessions_expires ON web_sessions(expires_at)")
    db.execute(
        """CREATE TABLE login_failures (
            kind TEXT NOT NULL CHECK (kind IN ('account', 'address')),
            subject TEXT NOT NULL,
            failures INTEGER NOT NULL,
            first_at TEXT NOT NULL,
            last_at TEXT NOT NULL,
            locked_until TEXT,
            PRIMARY KEY (kind, subject)
        )"""
    )
    db.execute("CREATE INDEX login_failures_last ON login_failures(last_at)")
    db.execute(
        """CREATE TABLE web_passwords (
            user_name TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            replaces TEXT NOT NULL,
            changed_at TEXT NOT NULL
        )"""
    )


@migrations()
def m013_page_indexes(db: Database) -> None:
    """What the inbox and the cockpit read at 100k mentions (`make bench`, pages): the open conversations alone (a
    partial index the literal open states select), counts by state, and the mentions by date with their keys."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS conversations_open ON conversations(state, due_at) "
        "WHERE state IN ('new', 'assigned', 'reopened') AND triaged_at IS NOT NULL"
    )
    db.execute("CREATE INDEX IF NOT EXISTS conversations_state_triaged ON conversations(state, triaged_at)")
    db.execute("CREATE INDEX IF NOT EXISTS mentions_published_key ON mentions(published_at, key)")
    db.execute("ANALYZE")


@migrations()
def m014_presence(db: Database) -> None:
    """Who has a mention open or is answering it (the dashboard's collision notice); numbered after the page
    indexes of m013."""
    db.execute(
        """CREATE TABLE presence (
            key TEXT NOT NULL,
            member TEXT NOT NULL,
            doing TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (key, member)
        )"""
    )
    db.execute("CREATE INDEX presence_at ON presence(at)")


@migrations()
def m015_replies(db: Database) -> None:
    """Replies written in passaparola: each its own outbox row (exactly once, with an idempotency key), with the
    approval, the override of a blocked lint and the platform's answer kept as the audit trail."""
    db.execute(
        """CREATE TABLE replies (
            id INTEGER PRIMARY KEY,
            idempotency_key TEXT NOT NULL UNIQUE,
            key TEXT NOT NULL,
            channel TEXT NOT NULL,
            source TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'reply',
            text TEXT NOT NULL,
            state TEXT NOT NULL,
            written_by TEXT NOT NULL,
            findings TEXT NOT NULL DEFAULT '[]',
            override_by TEXT NOT NULL DEFAULT '',
            override_reason TEXT NOT NULL DEFAULT '',
            approved_by TEXT NOT NULL DEFAULT '',
            approved_at TEXT,
            reviewed_comment TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            attempt_started_at TEXT,
            next_attempt_at TEXT,
            problem TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            platform_id TEXT NOT NULL DEFAULT '',
            url TEXT NOT NULL DEFAULT '',
            cost_usd REAL NOT NULL DEFAULT 0,
            sent_at TEXT,
            author_key TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX replies_key ON replies(key, id)")
    db.execute("CREATE INDEX replies_state ON replies(state, next_attempt_at)")
    db.execute("CREATE INDEX replies_author_kind ON replies(author_key, kind, created_at)")
    db.execute("ALTER TABLE brand_replies ADD COLUMN holding INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE mentions ADD COLUMN place TEXT NOT NULL DEFAULT ''")  # a review's location or app


@migrations()
def m016_listing_indexes(db: Database) -> None:
    """What the inbox's counts and deep pages read at 100k mentions (`make bench`, pages), each an index that holds
    what a filter reads, so a count or a skipped offset reads the index alone instead of every row: a conversation's
    state by its key (the join from a mention to its conversation), a mention's sentiment and language by its key
    (the tags' rows are wide: probabilities, topics), a channel's mentions by date, as `mentions_published_key`
    (m013) holds them all. ANALYZE gives the planner their sizes."""
    db.execute("CREATE INDEX IF NOT EXISTS conversations_key_state ON conversations(key, state, triaged_at)")
    db.execute("CREATE INDEX IF NOT EXISTS mention_tags_key_reading ON mention_tags(key, sentiment, language)")
    db.execute("CREATE INDEX IF NOT EXISTS mentions_channel_published ON mentions(platform, published_at, key)")
    for index in ("conversations_key_state", "mention_tags_key_reading", "mentions_channel_published"):
        db.execute(f"ANALYZE {index}")


@migrations()
def m017_mention_facts(db: Database) -> None:
    """What a review says about where it was written (the App Store territory, the app's version, the phone and its
    Android), as short strings in a JSON object: the facts a care agent answers with. Not in the search index."""
    db.execute("ALTER TABLE mentions ADD COLUMN facts TEXT NOT NULL DEFAULT '{}'")


@migrations()
def m018_backfill_checkpoints(db: Database) -> None:
    """Where an interrupted ``import`` or ``reanalyze`` stopped (`storage.backfills`): one row per backfill, written
    in the same transaction as the chunk it records, so a re-run reads nothing that was stored already."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS backfill_checkpoints (
            name TEXT PRIMARY KEY,
            detail TEXT NOT NULL DEFAULT '',
            position TEXT NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL
        )"""
    )


@migrations()
def m019_advocate_changes(db: Database) -> None:
    """What advocate scoring needs to re-read only the people with something new (#23): at a million mentions a
    full re-score of the 180-day window takes seconds, every cycle.

    - ``advocate_dirty``: the people whose score may have changed, marked by triggers on every write that moves a
      score (a mention stored, edited or deleted; its reading; a person's correction; an author's reach or handle;
      an account linked or unlinked), so no write path can forget to. ``claimed`` is set when a cycle starts
      reading them; a mark made after that clears it again, so the person is read once more next cycle.
    - ``advocate_runs``: when the last cycle scored, and with which settings; a change of settings re-scores all.
    - ``advocate_scores.exact``: the unrounded score at ``computed_at``, so a score that only ages is decayed in
      place (``exact * 0.5 ** (age / half-life)``) to the same number a re-score gives."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS advocate_dirty (person_id INTEGER PRIMARY KEY, claimed INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS advocate_runs (id INTEGER PRIMARY KEY CHECK (id = 1), scored_at TEXT NOT NULL, "
        "window_since TEXT NOT NULL, settings TEXT NOT NULL)"
    )
    db.execute("ALTER TABLE advocate_scores ADD COLUMN exact REAL")
    db.execute("CREATE INDEX IF NOT EXISTS advocate_scores_computed ON advocate_scores(computed_at)")
    mark = (
        "INSERT INTO advocate_dirty (person_id) SELECT person_id FROM person_authors WHERE author_key = {author} "
        "ON CONFLICT (person_id) DO UPDATE SET claimed = 0"
    )
    of_mention = "(SELECT author_key FROM mentions WHERE key = {row}.key)"
    triggers = {
        "mentions_insert": ("AFTER INSERT ON mentions", [mark.format(author="NEW.author_key")]),
        "mentions_update": (
            "AFTER UPDATE ON mentions WHEN OLD.text IS NOT NEW.text OR OLD.published_at IS NOT NEW.published_at "
            "OR OLD.author_key IS NOT NEW.author_key OR OLD.url IS NOT NEW.url",
            [mark.format(author="OLD.author_key"), mark.format(author="NEW.author_key")],
        ),
        "mentions_delete": ("AFTER DELETE ON mentions", [mark.format(author="OLD.author_key")]),
        "tags_insert": ("AFTER INSERT ON mention_tags", [mark.format(author=of_mention.format(row="NEW"))]),
        "tags_update": (
            "AFTER UPDATE ON mention_tags WHEN OLD.sentiment IS NOT NEW.sentiment "
            "OR OLD.sentiment_probs IS NOT NEW.sentiment_probs OR OLD.topics IS NOT NEW.topics",
            [mark.format(author=of_mention.format(row="NEW"))],
        ),
        "corrections_insert": (
            "AFTER INSERT ON sentiment_corrections",
            [mark.format(author=of_mention.format(row="NEW"))],
        ),
        "corrections_update": (
            "AFTER UPDATE ON sentiment_corrections",
            [mark.format(author=of_mention.format(row="NEW"))],
        ),
        "corrections_delete": (
            "AFTER DELETE ON sentiment_corrections",
            [mark.format(author=of_mention.format(row="OLD"))],
        ),
        "authors_update": (
            "AFTER UPDATE ON authors WHEN OLD.reach IS NOT NEW.reach OR OLD.handle IS NOT NEW.handle",
            [mark.format(author="NEW.key")],
        ),
    }
    link = (
        "INSERT INTO advocate_dirty (person_id) VALUES ({row}.person_id) "
        "ON CONFLICT (person_id) DO UPDATE SET claimed = 0"
    )
    triggers |= {
        "links_insert": ("AFTER INSERT ON person_authors", [link.format(row="NEW")]),
        "links_update": ("AFTER UPDATE ON person_authors", [link.format(row="OLD"), link.format(row="NEW")]),
        "links_delete": ("AFTER DELETE ON person_authors", [link.format(row="OLD")]),
    }
    for name, (when, statements) in triggers.items():
        body = "; ".join(statements)
        db.execute(f"CREATE TRIGGER IF NOT EXISTS advocate_dirty_{name} {when} BEGIN {body}; END")


@migrations()
def m020_cockpit_indexes(db: Database) -> None:
    """What the cockpit reads at 1M mentions (`make bench`, pages; #23), each so a figure reads the window's few
    index entries instead of every stored row:

    - ``mentions_rated``: the mentions with a star rating, by date, with their channel, place and rating (partial:
      its WHERE is the ratings query's own test of the rating), so the 60 days of ratings read the few rated
      mentions instead of every mention of those days;
    - ``conversations_due``: the conversations by deadline, so a workload reads today's deadlines (and the open ones,
      `conversations_open`) instead of every conversation that ever had an assignee;
    - ``mentions_published_channel``: the mentions by date with their channel and key, so the response figures read
      the window from the index alone (the mentions' rows are wide: text, metrics);
    - ``mention_tags_topics``: the tags of the mentions that have a topic, so the complaints skip the (wide) tags of
      every mention of their weeks that has none."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS mentions_rated ON mentions(published_at, platform, place, "
        "json_extract(metrics, '$.rating')) WHERE json_extract(metrics, '$.rating') > 0"
    )
    db.execute("CREATE INDEX IF NOT EXISTS conversations_due ON conversations(due_at)")
    db.execute("CREATE INDEX IF NOT EXISTS mentions_published_channel ON mentions(published_at, platform, key)")
    db.execute(
        "CREATE INDEX IF NOT EXISTS mention_tags_topics ON mention_tags(key, sentiment, topics) "
        "WHERE topics IS NOT NULL AND topics != '[]'"
    )
    for index in ("mentions_rated", "conversations_due", "mentions_published_channel", "mention_tags_topics"):
        db.execute(f"ANALYZE {index}")


@migrations()
def m021_last_answerers(db: Database) -> None:
    """Who answered each author last (`ConversationQuery.last_answerers`, routing a returning author to the same
    person): kept by triggers as conversations are answered, so triage looks one row up per author instead of
    reading every mention the author ever wrote (half a second a cycle at a million mentions). When the answer it
    holds is undone (the conversation reopened or deleted), the author's row is found again from what is left."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS author_answerers (author_key TEXT PRIMARY KEY, member TEXT NOT NULL, "
        "answered_at TEXT NOT NULL, key TEXT NOT NULL)"
    )
    latest = (
        "SELECT m.author_key, c.answered_by, c.answered_at, c.key "
        "FROM conversations c JOIN mentions m ON m.key = c.key "
        "WHERE c.state = 'answered' AND c.answered_by != '' AND c.answered_at IS NOT NULL {where} "
        "ORDER BY c.answered_at"
    )
    upsert = (
        " ON CONFLICT (author_key) DO UPDATE SET member = excluded.member, answered_at = excluded.answered_at, "
        "key = excluded.key WHERE excluded.answered_at >= author_answerers.answered_at"
    )
    db.execute(f"INSERT INTO author_answerers (author_key, member, answered_at, key) {latest.format(where='')}{upsert}")
    answered = (
        "INSERT INTO author_answerers (author_key, member, answered_at, key) "
        "SELECT m.author_key, NEW.answered_by, NEW.answered_at, NEW.key FROM mentions m WHERE m.key = NEW.key" + upsert
    )
    redo = (  # the undone answer's row loses its date, so whatever answer of the author is left replaces it
        "UPDATE author_answerers SET answered_at = '' WHERE key = OLD.key; "
        "INSERT INTO author_answerers (author_key, member, answered_at, key) "
        + latest.format(where="AND m.author_key = (SELECT author_key FROM author_answerers WHERE key = OLD.key)")
        + upsert
        + "; DELETE FROM author_answerers WHERE key = OLD.key"
    )
    when = "NEW.state = 'answered' AND NEW.answered_by != '' AND NEW.answered_at IS NOT NULL"
    held = "EXISTS (SELECT 1 FROM author_answerers WHERE key = OLD.key)"
    for name, event, body in (
        ("answered_insert", f"AFTER INSERT ON conversations WHEN {when}", answered),
        ("answered_update", f"AFTER UPDATE OF state, answered_by, answered_at ON conversations WHEN {when}", answered),
        (
            "answer_undone",
            f"AFTER UPDATE OF state, answered_by, answered_at ON conversations WHEN NOT ({when}) AND {held}",
            redo,
        ),
        ("answer_deleted", f"AFTER DELETE ON conversations WHEN {held}", redo),
    ):
        db.execute(f"CREATE TRIGGER IF NOT EXISTS author_answerers_{name} {event} BEGIN {body}; END")


@migrations()
def m022_rule_hours(db: Database) -> None:
    """What the rules' four-week baselines add up every minute (#23; `Conversations.hour_counts`): per UTC hour, the
    mentions published in it, how many have a sentiment (a person's correction first) and how many are negative.
    An hour without a row is not known and is counted from the mentions when a rule needs it, so this migration
    counts nothing. Triggers drop an hour's row whenever a write could change it (a mention stored, moved or
    deleted; its reading; a person's correction), so no write path can leave a count behind. And an index of who
    answered whom by member, so triage finds the authors a member with room answered lately without reading all."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS rule_hours (hour TEXT PRIMARY KEY, mentions INTEGER NOT NULL, "
        "scored INTEGER NOT NULL, negative INTEGER NOT NULL) WITHOUT ROWID"
    )
    drop = "DELETE FROM rule_hours WHERE hour = substr({0}, 1, 13)"
    of_mention = "(SELECT published_at FROM mentions WHERE key = {0}.key)"
    triggers = {
        "mentions_insert": ("AFTER INSERT ON mentions", [drop.format("NEW.published_at")]),
        "mentions_update": (
            "AFTER UPDATE OF published_at, key ON mentions "
            "WHEN OLD.published_at IS NOT NEW.published_at OR OLD.key IS NOT NEW.key",
            [drop.format("OLD.published_at"), drop.format("NEW.published_at")],
        ),
        "mentions_delete": ("AFTER DELETE ON mentions", [drop.format("OLD.published_at")]),
    }
    for table, column in (("mention_tags", "sentiment"), ("sentiment_corrections", "label")):
        triggers |= {
            f"{table}_insert": (f"AFTER INSERT ON {table}", [drop.format(of_mention.format("NEW"))]),
            f"{table}_update": (
                f"AFTER UPDATE OF {column}, key ON {table} "
                f"WHEN OLD.{column} IS NOT NEW.{column} OR OLD.key IS NOT NEW.key",
                [drop.format(of_mention.format("OLD")), drop.format(of_mention.format("NEW"))],
            ),
            f"{table}_delete": (f"AFTER DELETE ON {table}", [drop.format(of_mention.format("OLD"))]),
        }
    for name, (when, statements) in triggers.items():
        body = "; ".join(statements)
        db.execute(f"CREATE TRIGGER IF NOT EXISTS rule_hours_{name} {when} BEGIN {body}; END")
    # triage asks which authors the members with room answered lately (a returning author goes back to them)
    db.execute("CREATE INDEX IF NOT EXISTS author_answerers_member ON author_answerers(member, answered_at)")
    # and reads the open items someone holds, and the unassigned ones of the teams a member with room serves
    waiting = "state IN ('new', 'assigned', 'reopened') AND triaged_at IS NOT NULL AND COALESCE(assignee, '')"
    db.execute(f"CREATE INDEX IF NOT EXISTS conversations_held ON conversations(assignee) WHERE {waiting} != ''")
    db.execute(
        "CREATE INDEX IF NOT EXISTS conversations_waiting ON conversations(COALESCE(team, ''), due_at) "
        f"WHERE {waiting} = ''"
    )
    # negative_mention reads, between two cycles, only what was written since (`Conversations.marked`): the mentions
    # stored, moved, read again, corrected or reopened, the authors whose reach changed, the alerts deleted; the rule's
    # ``rule_state`` says up to which mark its last cycle read (none, or other settings: it reads the whole window)
    db.execute("CREATE TABLE IF NOT EXISTS rule_marks (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, author TEXT)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS rule_state (rule TEXT PRIMARY KEY, settings TEXT NOT NULL, seq INTEGER NOT NULL, "
        "at TEXT NOT NULL, seen TEXT NOT NULL)"
    )
    mark = "INSERT INTO rule_marks (key) VALUES ({0}.key)"
    marks = {
        "mentions_insert": ("AFTER INSERT ON mentions", mark.format("NEW")),
        "mentions_update": ("AFTER UPDATE OF published_at, author_key, key ON mentions", mark.format("NEW")),
        "tags_insert": ("AFTER INSERT ON mention_tags", mark.format("NEW")),
        "tags_update": ("AFTER UPDATE OF sentiment, key ON mention_tags", mark.format("NEW")),
        "corrections_insert": ("AFTER INSERT ON sentiment_corrections", mark.format("NEW")),
        "corrections_update": ("AFTER UPDATE ON sentiment_corrections", mark.format("NEW")),
        "corrections_delete": ("AFTER DELETE ON sentiment_corrections", mark.format("OLD")),
        "conversations_update": (
            "AFTER UPDATE OF state ON conversations WHEN NEW.state IN ('new', 'assigned', 'reopened')",
            mark.format("NEW"),
        ),
        "authors_update": (
            "AFTER UPDATE OF reach ON authors WHEN OLD.reach IS NOT NEW.reach",
            "INSERT INTO rule_marks (author) VALUES (NEW.key)",
        ),
        "outbox_delete": (
            "AFTER DELETE ON outbox",
            "INSERT INTO rule_marks (key) SELECT value FROM json_each(COALESCE(OLD.mentions, '[]'))",
        ),
    }
    for name, (when, statement) in marks.items():
        db.execute(f"CREATE TRIGGER IF NOT EXISTS rule_marks_{name} {when} BEGIN {statement}; END")


@migrations()
def m023_response_days(db: Database) -> None:
    """The cockpit's first-response figures over 30 days at a million mentions (#23; `Board.response_tallies`): per
    UTC day and time zone, the grouped rows of the day's settled conversations (answered, ignored, closed), which no
    longer change with the clock. A day without a row is counted from the mentions when a page needs it and kept
    then, so this migration counts nothing. Triggers drop a day's rows whenever a write could change them: its
    conversations, their mentions and readings, and those of the mentions they follow up (a follow-up's row carries
    the group and the sentiment of the mention it follows), so no write path can leave a count behind."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS response_days (day TEXT NOT NULL, zone TEXT NOT NULL, rows TEXT NOT NULL, "
        "PRIMARY KEY (day, zone)) WITHOUT ROWID"
    )
    # the follow-ups of a mention, found without reading every conversation
    db.execute(
        "CREATE INDEX IF NOT EXISTS conversations_follows ON conversations(follows_key) "
        "WHERE COALESCE(follows_key, '') != ''"
    )
    followers = (
        "SELECT substr(fm.published_at, 1, 10) FROM conversations f JOIN mentions fm ON fm.key = f.key "
        "WHERE COALESCE(f.follows_key, '') != '' AND f.follows_key = {0}"
    )
    own = "(SELECT substr(published_at, 1, 10) FROM mentions WHERE key = {0})"
    drop = "DELETE FROM response_days WHERE day IN (SELECT " + own + " UNION " + followers + ")"
    drop_at = "DELETE FROM response_days WHERE day IN (SELECT substr({1}, 1, 10) UNION " + followers + ")"
    # Only settled conversations are kept, so a write matters when its conversation is settled (before or after)
    # or when others follow it up: the common writes (a new mention, its reading, triage) skip the drop.
    opened = "('new', 'assigned', 'reopened')"
    followed = "EXISTS (SELECT 1 FROM conversations f WHERE COALESCE(f.follows_key, '') != '' AND f.follows_key = {0})"
    settled = "EXISTS (SELECT 1 FROM conversations s WHERE s.key = {0} AND s.state NOT IN " + opened + ")"
    used = "state, assignee, team, answered_by, response_seconds, due_at, answered_at, follows_key"
    triggers = {
        "conversations_insert": (
            f"AFTER INSERT ON conversations WHEN NEW.state NOT IN {opened} OR {followed.format('NEW.key')}",
            [drop.format("NEW.key")],
        ),
        "conversations_update": (
            f"AFTER UPDATE OF {used} ON conversations WHEN OLD.state NOT IN {opened} OR NEW.state NOT IN {opened} "
            f"OR {followed.format('NEW.key')}",
            [drop.format("NEW.key")],
        ),
        "conversations_delete": (
            f"AFTER DELETE ON conversations WHEN OLD.state NOT IN {opened} OR {followed.format('OLD.key')}",
            [drop.format("OLD.key")],
        ),
        "mentions_update": (
            "AFTER UPDATE OF published_at, platform, key ON mentions",
            [drop_at.format("OLD.key", "OLD.published_at"), drop_at.format("NEW.key", "NEW.published_at")],
        ),
        "mentions_delete": ("AFTER DELETE ON mentions", [drop_at.format("OLD.key", "OLD.published_at")]),
    }
    for table, column in (("mention_tags", "sentiment"), ("sentiment_corrections", "label")):
        matters = f"({settled}) OR ({followed})"
        triggers |= {
            f"{table}_insert": (
                f"AFTER INSERT ON {table} WHEN {matters.format('NEW.key')}",
                [drop.format("NEW.key")],
            ),
            f"{table}_update": (
                f"AFTER UPDATE OF {column}, key ON {table} "
                f"WHEN {matters.format('OLD.key')} OR {matters.format('NEW.key')}",
                [drop.format("OLD.key"), drop.format("NEW.key")],
            ),
            f"{table}_delete": (
                f"AFTER DELETE ON {table} WHEN {matters.format('OLD.key')}",
                [drop.format("OLD.key")],
            ),
        }
    for name, (when, statements) in triggers.items():
        body = "; ".join(statements)
        db.execute(f"CREATE TRIGGER IF NOT EXISTS response_days_{name} {when} BEGIN {body}; END")


@migrations()
def m024_deferred_schema(db: Database) -> None:
    """What a bulk import dropped to build once at its end (`storage.backfills.Backfills.defer_indexes`): each index
    and full-text trigger with its SQL, recorded in the transaction that drops it, so whatever stops the import
    (a crash, a kill) the next `Store.open` once the import is gone builds them again."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS deferred_schema (name TEXT PRIMARY KEY, type TEXT NOT NULL, "
        "tbl_name TEXT NOT NULL, sql TEXT NOT NULL, deferred_at TEXT NOT NULL)"
    )
