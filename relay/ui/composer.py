"""A human turn: the composer's "add" handler, which stores the writer's paragraph after the one the tab shows."""

from __future__ import annotations

import gradio as gr

from relay.limits import LimitExceeded, client_ip
from relay.story_store import StaleHeadError, StoryError, TurnError
from relay.ui.common import _need_name, _need_story, ui_error
from relay.ui.messages import user_error, warn
from relay.ui.story_services import StoryServices
from relay.ui_text import say


class Composer:
    """The composer's handler over the page's services."""

    def __init__(self, services: StoryServices):
        self.services = services

    def add(self, request: gr.Request, story_id, text, name, key, lang, head, draft_id):
        """Store `text` as the writer's paragraph; returns the emptied composer.

        `head` is the last paragraph the tab shows (a paragraph written since keeps the draft in the box,
        with a warning); `draft_id` names the draft, so a retried add is stored once.
        """
        sid = _need_story(story_id, lang)
        name = _need_name(name, lang)
        store = self.services.store
        try:
            with self.services.limits.counted("paragraph", store.writer_id(key), client_ip(request)):
                store.add_paragraph(sid, text, name, kind="human", expected_head=int(head or 0), writer_key=key,
                                    client_id=draft_id or None)
        except StaleHeadError:
            warn(lang, say(lang, "stale_head"))
            return gr.skip()  # the draft stays in the box; the live view shows the new paragraph
        # A refused paragraph stays in the box, readable: a warning toast says why (an error would cover the box).
        except LimitExceeded as e:
            return _refused(lang, ui_error(lang, e))
        except TurnError:
            return _refused(lang, user_error(lang, say(lang, "not_human_turn")))  # says whose turn it is
        except StoryError as e:
            return _refused(lang, user_error(lang, e))
        return ""


def _refused(lang: str, error: gr.Error):
    """Say why the paragraph was refused in a warning toast, and leave the composer as it was."""
    warn(lang, error.message)
    return gr.skip()
