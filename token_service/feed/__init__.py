"""The revocation feed, consumer side: one hub per process fans the ``revocations`` log out to
every Feed.WatchRevocations stream (see :mod:`token_service.feed.hub`)."""

from token_service.feed.hub import FeedHub, effective_set

__all__ = ["FeedHub", "effective_set"]
