"""The stories tab: the list of stories (refreshed on demand and whenever the tab opens) and a new story."""

from __future__ import annotations

import gradio as gr

from relay.limits import LimitExceeded, client_ip
from relay.settings import SettingsError
from relay.story_store import StoryError
from relay.ui.common import _need_name, ui_error
from relay.ui.controls import settings_from_values
from relay.ui.desk import empty_desk
from relay.ui.messages import user_error
from relay.ui.render import render_story_list
from relay.ui.story_services import StoryServices


class StoryList:
    """The stories tab's handlers over the page's services."""

    def __init__(self, services: StoryServices):
        self.services = services

    def refresh_list(self, lang):
        """The story list as HTML in the page's language."""
        return render_story_list(self.services.store.list_stories(), lang)

    def create(self, request: gr.Request, title, rule, name, key, lang, *values):
        """Start a story with the current sampling controls as its defaults, and open it.

        Outputs: the story list, the emptied title box, the tabs (on the story), the open story, the
        "no story open" note (hidden), then the desk (empty).
        """
        store = self.services.store
        name = _need_name(name, lang)
        try:
            self.services.limits.check("story", store.writer_id(key), client_ip(request))
            # The story's defaults are the current controls, but never a fixed seed: every
            # "regenerate" on the story would otherwise write the same text.
            settings = settings_from_values(self.services.names, values, self.services.setting_range).replace(seed=None)
            story = store.create_story(title, name, turn_rule=rule, settings=settings.to_dict(), writer_key=key)
        except LimitExceeded as e:
            raise ui_error(lang, e) from None
        except (StoryError, SettingsError) as e:
            raise user_error(lang, e) from None
        return (self.refresh_list(lang), "", gr.Tabs(selected="story"), story.id, gr.Markdown(visible=False),
                *empty_desk())
