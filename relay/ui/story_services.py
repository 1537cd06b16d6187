"""What the story tab's handlers share: `StoryServices`, the page's engine, store, model turns, stop
buttons, limits and settings, passed explicitly to each handler group (story_list, composer, desk,
export, page_load) so a handler runs in a test without building the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.limits import Limits
from relay.settings import SamplingSettings
from relay.turn_jobs import TurnJobs
from relay.turns import AITurn, Stops
from relay.ui.controls import setting_limits


@dataclass(frozen=True)
class StoryServices:
    """The page's shared services, as the story tab's handlers use them.

    `names` are the sampling controls' setting names in panel order; `setting_range` the engine's
    limits on them (relay.ui.controls.setting_limits).
    """

    engine: object
    store: object  # relay.story_store.StoryStore
    ai_turn: AITurn  # the model's turn for browser writers (names escaped for the page)
    stops: Stops  # each writer's stop/discard buttons on a story (relay.turn_jobs.job_key), from any of their tabs
    limits: Limits
    names: tuple[str, ...]
    defaults: SamplingSettings
    setting_range: dict
    jobs: TurnJobs = field(default_factory=TurnJobs)  # model turns running on the server, whatever their tabs do

    @classmethod
    def from_ui(cls, ui) -> StoryServices:
        """The services of the page being built (`ui` from relay.ui.demo.build_demo)."""
        return cls(engine=ui.engine, store=ui.store, ai_turn=ui.ai_turn, stops=ui.cancels, limits=ui.limits,
                   names=tuple(ui.names), defaults=ui.defaults, setting_range=setting_limits(ui.engine))
