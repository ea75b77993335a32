"""Sources: each turns a platform's data into `Mention`s and the brand's own replies.

`SOURCES` is the registry: the ``type`` key of a ``[[sources]]`` table picks the class. Adding a source is
one module, one line here, one golden fixture, one test file and one README section.

The names are imported on first use (PEP 562): a feed-parse worker imports `listener.feedparse` alone, and
must not load every platform's client with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from listener.appstore import AppStoreSource
    from listener.bluesky import BlueskySource
    from listener.demo import DemoSource
    from listener.discourse import DiscourseSource
    from listener.facebook import FacebookSource
    from listener.feed import FeedSource
    from listener.gbp import GoogleBusinessSource
    from listener.googleplay import GooglePlaySource
    from listener.mastodon import MastodonSource
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
    from listener.youtube import YouTubeSource

    SOURCES: dict[str, type]

#: Each source class by the module that holds it, in the registry's order.
_SOURCE_MODULES = {
    "DemoSource": "listener.demo",
    "XSource": "listener.x",
    "FeedSource": "listener.feed",
    "DiscourseSource": "listener.discourse",
    "FacebookSource": "listener.facebook",
    "GoogleBusinessSource": "listener.gbp",
    "AppStoreSource": "listener.appstore",
    "GooglePlaySource": "listener.googleplay",
    "BlueskySource": "listener.bluesky",
    "MastodonSource": "listener.mastodon",
    "YouTubeSource": "listener.youtube",
}
_MODEL_NAMES = (
    "Author",
    "BrandReply",
    "Conversation",
    "Mention",
    "Poll",
    "RateLimited",
    "Source",
    "SourceError",
    "SourceHealth",
)


def __getattr__(name: str) -> Any:
    if name == "SOURCES":
        classes = [getattr(importlib.import_module(module), cls) for cls, module in _SOURCE_MODULES.items()]
        value: Any = {cls.kind: cls for cls in classes}
    elif name in _SOURCE_MODULES:
        value = getattr(importlib.import_module(_SOURCE_MODULES[name]), name)
    elif name in _MODEL_NAMES:
        value = getattr(importlib.import_module("listener.model"), name)
    else:
        raise AttributeError(f"module 'listener' has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [  # noqa: RUF022 (the registry's order, then the model's)
    "SOURCES",
    "DemoSource",
    "XSource",
    "FeedSource",
    "DiscourseSource",
    "FacebookSource",
    "GoogleBusinessSource",
    "AppStoreSource",
    "GooglePlaySource",
    "BlueskySource",
    "MastodonSource",
    "YouTubeSource",
    "Author",
    "BrandReply",
    "Conversation",
    "Mention",
    "Poll",
    "RateLimited",
    "Source",
    "SourceError",
    "SourceHealth",
]
