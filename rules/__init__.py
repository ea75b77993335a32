"""Rules: everything that decides. Taggers turn mentions into tags; evaluators turn state into alerts.

`EVALUATORS` is the registry: the ``type`` key of a ``[[rules]]`` table picks the class.
"""

from rules.base import Evaluator, StoreView, Tagger
from rules.digest import DailyDigest
from rules.health import SourceFailing
from rules.negative import NegativeMention, NegativeSpike
from rules.silence import SourceSilent
from rules.spikes import VolumeSpike
from rules.unanswered import Unanswered

EVALUATORS: dict[str, type] = {
    cls.kind: cls
    for cls in (Unanswered, SourceFailing, SourceSilent, VolumeSpike, NegativeMention, NegativeSpike, DailyDigest)
}

__all__ = [
    "EVALUATORS",
    "DailyDigest",
    "Evaluator",
    "NegativeMention",
    "NegativeSpike",
    "SourceFailing",
    "SourceSilent",
    "StoreView",
    "Tagger",
    "Unanswered",
    "VolumeSpike",
]
