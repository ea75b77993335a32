"""Teach it your brand: the team's corrections build a candidate that goes live only if not worse, every attempt
recorded with both scores, and a swap can be rolled back; the Teach page lists what the model is least sure of."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from passaparola.pipeline import enrich
from passaparola.retraining import MIN_CORRECTIONS, live_model_dir, retrain, rollback
from rules.analysis import AnalysisSettings, Analyzer
from rules.sentiment import MODEL_DIR, ModelError
from rules.training import CORPUS
from storage import Store
from tests.conftest import T0
from tests.test_storage import mention


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every tenth care row of the shipped corpus and every fortieth everyday post: a candidate in seconds."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    care = [line for line in lines if '"sector": "general"' not in line]
    everyday = [line for line in lines if '"sector": "general"' in line]
    path.write_text("\n".join([*care[::10], *everyday[::40]]) + "\n", encoding="utf-8")
    return path


def corrected_store(tmp_path: Path, count: int) -> Store:
    store = Store.open(tmp_path / "p.db")
    analyzer = Analyzer(AnalysisSettings(mode="fast"))
    texts = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()[1::97]][:count]
    mentions = [mention(str(i), text=t) for i, t in enumerate(texts)]
    from listener.model import Poll

    store.save_poll("x", "x", Poll(mentions=tuple(enrich(mentions, [analyzer]))), T0)
    for i, m in enumerate(mentions):
        store.mentions.correct_sentiment(m.key, ("negative", "neutral", "positive")[i % 3], "giulia", T0)
    return store


def test_too_few_corrections_are_refused_with_what_to_do(tmp_path: Path, small_corpus: Path) -> None:
    store = corrected_store(tmp_path, 5)
    with pytest.raises(ModelError, match=f"only 5 corrections: label at least {MIN_CORRECTIONS}"):
        retrain(store, tmp_path / "p.db", None, T0, corpus=small_corpus)
    assert store.models.history() == []


def test_a_candidate_is_judged_recorded_and_can_be_rolled_back(tmp_path: Path, small_corpus: Path) -> None:
    store = corrected_store(tmp_path, 60)
    outcome = retrain(store, tmp_path / "p.db", None, T0, threads=2, corpus=small_corpus)
    (attempt,) = store.models.history()
    assert attempt["action"] == ("swap" if outcome.swapped else "rejected")
    scores = attempt["scores"]
    assert set(scores) == {"live", "candidate"} and {"corpus_test", "brand_held_out"} <= set(scores["candidate"])
    # A tenth of the corpus trains a weaker model than the shipped one: it must not go live.
    assert outcome.swapped is False and "corpus_test accuracy" in outcome.reason
    assert live_model_dir(store, None) is None

    # The same candidate judged against itself is not worse: it goes live, and rollback brings back the shipped one.
    store.models.record(
        "swap", from_dir=str(MODEL_DIR), to_dir=attempt["to_dir"], from_version="shipped",
        to_version=attempt["to_version"], scores={}, reason="test", at=T0,
    )  # fmt: skip
    assert live_model_dir(store, None) == Path(attempt["to_dir"])
    live = Analyzer(AnalysisSettings(mode="fast", model_dir=live_model_dir(store, None)))
    assert live.model_version == attempt["to_version"].replace("accurate-", "fast-")
    undone = rollback(store, T0)
    assert undone["to_version"] == attempt["to_version"]
    assert live_model_dir(store, None) == MODEL_DIR
    assert [r["action"] for r in store.models.history()] == ["rollback", "swap", "rejected"]


def test_the_daemon_retrains_in_its_own_thread_and_reads_with_the_new_model_once_live(tmp_path: Path) -> None:
    import io

    from notifiers.log import LogNotifier
    from passaparola.daemon import Daemon
    from tests.conftest import settings_from

    settings = settings_from(f'[storage]\npath = "{tmp_path / "d.db"}"\n[analysis]\nretrain_every_days = 7\n', tmp_path)
    store = Store.open(tmp_path / "d.db")
    reloaded: list[int] = []
    daemon = Daemon(
        settings, store, LogNotifier(stream=io.StringIO()), taggers=[], clock=lambda: T0,
        reload_taggers=lambda: reloaded.append(1) or [],
    )  # fmt: skip
    assert "retrain" in {tag for job in daemon.scheduler.jobs for tag in job.tags}
    daemon.retrain()  # no corrections yet: the thread says so and changes nothing
    assert daemon._retraining is not None
    daemon._retraining.join(timeout=60)
    assert store.models.history() == [] and reloaded == []
    daemon._model_swapped.set()  # as the thread does after a swap
    daemon.inbound()
    assert reloaded == [1]
