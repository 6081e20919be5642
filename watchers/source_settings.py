"""Where each public source lives and the optional credentials for it.

Every base URL is a setting so that a corporate proxy, a mirror or a test server can stand in
for the real service. Credentials are optional wherever the source allows anonymous use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from watchers.http import DEFAULT_USER_AGENT


@dataclass(frozen=True, slots=True)
class SourceSettings:
    user_agent: str = DEFAULT_USER_AGENT
    hn_api_url: str = "https://hn.algolia.com/api/v1/"
    reddit_url: str = "https://www.reddit.com/"
    reddit_oauth_url: str = "https://oauth.reddit.com/"
    reddit_client_id: str | None = None
    reddit_client_secret: str | None = field(default=None, repr=False)
    mastodon_access_token: str | None = field(default=None, repr=False)
    mastodon_instance: str | None = None  # the instance that issued the token
    bluesky_api_url: str = "https://public.api.bsky.app/xrpc/"
    bluesky_auth_url: str = "https://bsky.social/xrpc/"
    bluesky_identifier: str | None = None
    bluesky_app_password: str | None = field(default=None, repr=False)
    stackexchange_api_url: str = "https://api.stackexchange.com/2.3/"
    stackexchange_key: str | None = field(default=None, repr=False)
    github_api_url: str = "https://api.github.com/"
    github_token: str | None = field(default=None, repr=False)
    appstore_url: str = "https://itunes.apple.com/"
