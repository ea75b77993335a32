"""Sources: each turns a platform's data into `Mention`s and the brand's own replies.

`SOURCES` is the registry: the ``type`` key of a ``[[sources]]`` table picks the class. Adding a source is
one module, one line here, one golden fixture, one test file and one README section.
"""

from listener.demo import DemoSource
from listener.facebook import FacebookSource
from listener.feed import FeedSource
from listener.model import (
    Author,
    BrandReply,
    Conversation,
    Mention,
    Poll,
    RateLimited,
    Source,
    SourceError,
    SourceHealth,
)
from listener.x import XSource

SOURCES: dict[str, type] = {cls.kind: cls for cls in (DemoSource, XSource, FeedSource, FacebookSource)}

__all__ = [
    "SOURCES",
    "Author",
    "BrandReply",
    "Conversation",
    "DemoSource",
    "FacebookSource",
    "FeedSource",
    "Mention",
    "Poll",
    "RateLimited",
    "Source",
    "SourceError",
    "SourceHealth",
    "XSource",
]
