"""A page opening: the reader's language, who writes (the saved name, the writer key or a signed-in account),
the story list, the story the address names (`?story=N`) with its default settings, and the suggestions
still waiting in this writer's model turn; and keeping the writer's name in the browser.
"""

from __future__ import annotations

import gradio as gr

from relay.limits import LimitExceeded, client_ip
from relay.settings import SamplingSettings, SettingsError
from relay.story_store import InvalidInput, NotFound, writer_id_of
from relay.ui.common import _lang, page_writer
from relay.ui.controls import settings_to_values
from relay.ui.desk import my_turn_view, show_desk
from relay.ui.limit_text import limit_message
from relay.ui.messages import warn
from relay.ui.render import _esc, render_story_list
from relay.ui.story_services import StoryServices
from relay.ui_text import say


def remember_name(name):
    """The writer's name as the browser keeps it (without surrounding spaces)."""
    return (name or "").strip()


def story_id_from_address(raw: str) -> int:
    """A story id from the address bar: digits only (no signs, spaces or decimals)."""
    if not isinstance(raw, str) or not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise InvalidInput("not a story number")
    return int(raw)


class PageLoad:
    """The page's load handler over the page's services."""

    def __init__(self, services: StoryServices):
        self.services = services

    def story_defaults(self, story) -> SamplingSettings:
        """The sampling settings a story was created with (the page's defaults if they no longer validate)."""
        try:
            return SamplingSettings.of_story(story.settings)
        except SettingsError:
            return self.services.defaults

    def on_load(self, saved_name, saved_key, request: gr.Request, profile: gr.OAuthProfile | None = None):
        """Outputs: language, name, writer key, its public id, the story list, the tabs, the open story, the
        "no story open" note, the sampling controls, then the desk."""
        store, names = self.services.store, self.services.names
        lang = _lang(request)
        try:
            key, account_name = page_writer(store, saved_key, profile, before_issuing=lambda: self.services.limits.check(
                "writer_key", None, client_ip(request)))
        except LimitExceeded as e:  # an address asking for key after key: it reads, but gets no new key
            warn(lang, limit_message(lang, e))
            key, account_name = "", None
        saved_name = account_name or saved_name
        stories = render_story_list(store.list_stories(), lang)
        raw = request.query_params.get("story")
        sid, tab, values, view = gr.skip(), gr.skip(), [gr.skip()] * len(names), None
        if raw:
            try:
                sid = story_id_from_address(raw)
                story = store.get_story(sid)
            except (InvalidInput, NotFound):
                gr.Warning(say(lang, "story_not_found", story=_esc(raw)))
                sid = gr.skip()
            else:
                tab, values = gr.Tabs(selected="story"), settings_to_values(names, self.story_defaults(story))
                view = my_turn_view(store, sid, (saved_name or "").strip(), key)
        hint = gr.Markdown(visible=raw is None or sid is gr.skip())
        return (lang, saved_name or gr.skip(), key, writer_id_of(key) if key else "", stories, tab, sid, hint, *values,
                *show_desk(store, lang, view))
