"""How training chooses what the dev split decides: here, the negative bias of each language."""

from __future__ import annotations

import numpy as np

from rules.training import Example, choose_thresholds


def test_the_negative_bias_keeps_complaints_found_without_calling_everyday_posts_negative() -> None:
    """The recall floor is on complaints. Everyday negatives (a lost match, a rainy day) the model reads as neutral
    must not raise the bias, else every neutral everyday post turns negative with it."""
    care = [Example("rimborso mai arrivato", "negative", "it", sector="telco")] * 20
    care += [Example("a che ora aprite?", "neutral", "it", sector="food")] * 20
    everyday = [Example("abbiamo perso ancora", "negative", "it", sector="general")] * 20
    everyday += [Example("stasera partita", "neutral", "it", sector="general")] * 40
    dev = [*care, *everyday]
    # negative, neutral, positive: complaints plainly negative; everyday negatives a little below their neutral
    # reading; everyday neutrals as close to negative as those
    rows = [(0.8, 0.15, 0.05)] * 20 + [(0.1, 0.8, 0.1)] * 20 + [(0.3, 0.6, 0.1)] * 20 + [(0.3, 0.6, 0.1)] * 40
    chosen = choose_thresholds({"sentiment": np.array(rows), "needs_answer": np.zeros((len(dev), 2))}, dev)

    bias = chosen["negative_bias"]["it"]
    shifted = np.log(np.array(rows)) + np.array([bias, 0.0, 0.0])
    said = shifted.argmax(axis=1)
    assert (said[:20] == 0).all()  # every complaint still found
    assert (said[60:] == 1).all(), bias  # and the everyday neutral posts stay neutral
