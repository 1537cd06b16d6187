"""The model's turn on the writing desk: write a suggestion (or 2-4 side by side), stop it, flip between
the turn's suggestions (swipes), pick one, accept or discard it, keep its turn alive while it is edited,
reuse its seed; and the desk's boxes for a turn (`show_desk`), which the page load and a new story fill too.

A turn's suggestions as this browser tab sees them are its `view`: {"ids": candidate ids, "index": the
one shown, "expected_head": the paragraph it follows, "seen_text": the text last shown, "alts": the ids
written side by side}. Every handler returns the desk's DESK_SLOTS outputs in the order the page wires
them: preview, view, swipe info, previous, next, seed line, touch timer, accept button.
"""

from __future__ import annotations

import dataclasses
import time

import gradio as gr

from relay.limits import LimitExceeded, client_ip
from relay.settings import SEED_MAX, SamplingSettings, SettingsError
from relay.story_store import NotAllowed, NotFound, StaleHeadError, StoryError, TurnBusy, TurnLost, writer_id_of
from relay.turn_jobs import TurnJob, job_key
from relay.turns import turn_grace_s
from relay.ui.common import _need_name, _need_story, ui_error
from relay.ui.controls import settings_from_values
from relay.ui.messages import info, user_error, warn
from relay.ui.render import _esc, seed_line
from relay.ui.story_services import StoryServices
from relay.ui_text import say

SHOW_EVERY_S = 0.08  # streamed text reaches the browser at most this often (a paint per token is wasted work)
DISCARD_WAIT_S = 2.0  # a discarded generation stops within a token; wait at most this long for it
TOUCH_EVERY_S = 60  # while a suggestion is being edited, its turn's idle timer is refreshed this often
DESK_SLOTS = 8  # the desk's outputs (see the module docstring)
MAX_ALTERNATIVES = 4  # side-by-side columns the page lays out


def empty_desk() -> tuple:
    """The desk with no suggestion: an empty box, nothing to flip, the idle timer off."""
    return ("", None, "", gr.Button(interactive=False), gr.Button(interactive=False), "", gr.Timer(active=False),
            gr.Button(interactive=True))


def writing_desk(text: str) -> tuple:
    """The desk while a suggestion is half written: nothing to flip and nothing to accept until it ends."""
    return (text, None, "", gr.Button(interactive=False), gr.Button(interactive=False), "", gr.skip(),
            gr.Button(interactive=False))


def next_seed(settings: SamplingSettings, used: set, lang: str) -> SamplingSettings:
    """A fixed seed that one of the turn's suggestions already used would write the same text again: use the
    next seed no suggestion of the turn used (seed + n), and say so (the seed line shows the seed used)."""
    if settings.seed is None or settings.seed not in used:
        return settings
    n = 1
    while (settings.seed + n) % (SEED_MAX + 1) in used:
        n += 1
    seed = (settings.seed + n) % (SEED_MAX + 1)
    info(lang, say(lang, "seed_next", seed=settings.seed, n=n, next=seed))
    return dataclasses.replace(settings, seed=seed)


def ended_desk(reason: str) -> tuple:
    """The desk after this writer's suggestion was taken over or expired: the reason where the suggestion was,
    nothing to accept or flip, the idle timer off."""
    return (reason, None, "", gr.Button(interactive=False), gr.Button(interactive=False), "", gr.Timer(active=False),
            gr.Button(interactive=False))


def show_desk(store, lang: str, view: dict | None, text: str | None = None, meta: dict | None = None) -> tuple:
    """The desk showing `view`'s current suggestion (read from `store` unless its `text` and `meta` are given)."""
    if not view or not view.get("ids"):
        return empty_desk()
    ids, i = view["ids"], view["index"]
    if text is None:
        candidate = store.get_candidate(ids[i])
        text, meta = candidate.text, candidate.meta
    swipe = say(lang, "swipe_of", i=i + 1, n=len(ids)) if len(ids) > 1 else ""
    view = {**view, "seen_text": text}
    # Past the last suggestion, "next" writes a new one (SWIPE_PAST_LAST_JS presses 다시 쓰기), as in SillyTavern.
    return (text, view, swipe, gr.Button(interactive=i > 0), gr.Button(interactive=True),
            seed_line(meta, lang) if meta else "", gr.Timer(active=True), gr.Button(interactive=True))


def my_turn_view(store, story_id: int, name: str, key: str | None) -> dict | None:
    """The suggestions waiting in this writer's model turn on the story (after a reload or in a second tab)."""
    turn = store.ai_turn(story_id)
    if turn is None or not turn.candidates or turn.status != "pending":
        return None
    if turn.holder_id is not None and (not key or writer_id_of(key) != turn.holder_id):
        return None
    if turn.holder_id is None and turn.holder != name:
        return None
    head = store.head(story_id)
    return {"ids": [c.id for c in turn.candidates], "index": len(turn.candidates) - 1,
            "expected_head": head.id if head else 0}


class Desk:
    """The desk's handlers over the page's services; each is wired to one button (or the touch timer)."""

    def __init__(self, services: StoryServices):
        self.services = services

    def _show(self, lang: str, view: dict | None, text: str | None = None, meta: dict | None = None) -> tuple:
        return show_desk(self.services.store, lang, view, text, meta)

    def _turn_inputs(self, story_id, name, values, lang) -> tuple[int, str, SamplingSettings, str | None]:
        """The open story, the writer, validated settings and the note for this turn only (the steering panel's,
        sent after the sampling controls when the page has it) for a model turn, or a message why not."""
        sid = _need_story(story_id, lang)
        name = _need_name(name, lang)
        count = len(self.services.names)
        values, turn_note = values[:count], (values[count] if len(values) > count else None)
        try:
            settings = settings_from_values(self.services.names, values, self.services.setting_range)
        except SettingsError as e:
            raise user_error(lang, e) from None
        return sid, name, settings, (turn_note or "").strip() or None

    # -- writing ---------------------------------------------------------------------------------

    def may_start(self, request: gr.Request, story_id, name, key, lang):
        """Refuse at once a model turn that could not run (wrong turn, someone else's turn, over a limit)."""
        sid = _need_story(story_id, lang)
        name = _need_name(name, lang)
        try:
            self.services.limits.check("model_turn", self.services.store.writer_id(key), client_ip(request))
        except LimitExceeded as e:
            raise ui_error(lang, e) from None
        self.services.ai_turn.check_ai_may_write(sid, name, lang, writer_key=key)

    def _start_job(self, request: gr.Request, sid: int, name: str, key: str | None, lang: str, work,
                   candidates: int = 0) -> TurnJob:
        """Start the writer's model turn as a server-side job (it outlives this tab) holding one of their
        model slots for its whole life; `work(stop)` yields its progress. Refused at once over a limit."""
        services = self.services
        store, stops, limits = services.store, services.stops, services.limits
        wid, ip = store.writer_id(key), client_ip(request)
        turn_key = job_key(sid, name, key)
        if services.jobs.running(turn_key) is not None:
            raise user_error(lang, say(lang, "ai_busy", holder=_esc(name)))
        try:
            if candidates:
                limits.check("candidates", wid, ip, cost=candidates)
            slot = limits.model_slot(wid, ip)
            slot.__enter__()
        except LimitExceeded as e:
            raise ui_error(lang, e) from None
        stop = stops.fresh(turn_key)
        try:
            return services.jobs.start(turn_key, lambda: work(stop), slot,
                                       on_end=lambda: stops.done(turn_key, stop))
        except RuntimeError:  # another tab of this writer started one an instant earlier
            slot.__exit__(None, None, None)
            stops.done(turn_key, stop)
            raise user_error(lang, say(lang, "ai_busy", holder=_esc(name))) from None

    def _seeds_used(self, view) -> set:
        """The seeds of the suggestions this tab shows of the turn."""
        used = set()
        for candidate_id in (view or {}).get("ids") or []:
            try:
                used.add(self.services.store.get_candidate(candidate_id).meta.get("seed"))
            except StoryError:
                continue
        return used

    def generate(self, request: gr.Request, story_id, name, key, view, adapter_name, lang, *values):
        """Write one suggestion, streamed into the box; it joins the turn's earlier ones as the last swipe.

        The writing runs as a job on the server: this handler only follows it, so closing or reloading
        the tab does not stop the model (see relay/turn_jobs.py)."""
        sid, name, settings, turn_note = self._turn_inputs(story_id, name, values, lang)
        ai_turn = self.services.ai_turn
        settings = next_seed(settings, self._seeds_used(view), lang)

        def work(stop):
            for text, done in ai_turn.stream(sid, name, settings, adapter_name or None, stop, lang,
                                             writer_key=key, turn_note=turn_note):
                yield [text], done

        job = self._start_job(request, sid, name, key, lang, work)
        yield from self.follow_new_swipe(job, view, lang)

    def follow_new_swipe(self, job: TurnJob, view, lang: str):
        """The desk while `job` writes one suggestion, streamed into the box; at its end it is the turn's last
        swipe (after those in `view`). Also used by branching (relay/ui/branch.py)."""
        ids = list(view["ids"]) if view and view.get("ids") else []
        shown, kept = 0.0, False
        for texts, done in job.follow():
            if done is None:
                # Nothing to accept until the text is finished and kept as a suggestion.
                if time.monotonic() - shown < SHOW_EVERY_S:
                    continue
                shown = time.monotonic()
                yield writing_desk(texts[0])
            else:
                kept = True
                ids.append(done["candidate_id"])
                new_view = {"ids": ids, "index": len(ids) - 1, "expected_head": done["expected_head"]}
                yield self._show(lang, new_view, texts[0], done["meta"])
        if not kept:
            # Discarded while written: end on an empty box, or the last half-written text (sent after the
            # discard's own clearing, or repeated by the stream's end) would pour back in.
            yield empty_desk()

    def alternatives(self, request: gr.Request, story_id, name, key, view, n, adapter_name, lang, *values):
        """2-4 suggestions stream side by side, each a column; all become swipes of the turn.

        Outputs: the desk, then the columns' row, their MAX_ALTERNATIVES boxes and their pick buttons.
        Like `generate`, the writing is a server-side job this handler follows.
        """
        sid, name, settings, turn_note = self._turn_inputs(story_id, name, values, lang)
        ai_turn, n = self.services.ai_turn, int(n)

        def work(stop):
            yield from ai_turn.alternatives(sid, name, settings, n, adapter_name or None, lang, writer_key=key,
                                            stop=stop, turn_note=turn_note)

        job = self._start_job(request, sid, name, key, lang, work, candidates=n)
        labels = [say(lang, "candidate_n", n=i + 1) for i in range(MAX_ALTERNATIVES)]
        picks_hidden = [gr.Button(visible=False)] * MAX_ALTERNATIVES
        shown, kept = 0.0, False
        for texts, done in job.follow():
            boxes = [gr.Textbox(value=texts[i], visible=True, label=labels[i]) if i < len(texts)
                     else gr.Textbox(value="", visible=False) for i in range(MAX_ALTERNATIVES)]
            if done is None:
                if time.monotonic() - shown < SHOW_EVERY_S:
                    continue  # coalesce: a browser cannot paint every token of four columns
                shown = time.monotonic()
                yield (*writing_desk(texts[0]), gr.Row(visible=True), *boxes, *picks_hidden)
                continue
            new_ids = done["candidate_ids"]
            ids = (list(view["ids"]) if view and view.get("ids") else []) + new_ids
            new_view = {"ids": ids, "index": len(ids) - len(new_ids), "expected_head": done["expected_head"],
                        "alts": new_ids}
            picks = [gr.Button(visible=i < len(texts)) for i in range(MAX_ALTERNATIVES)]
            kept = True
            yield (*self._show(lang, new_view, texts[0], done["meta"]), gr.Row(visible=True), *boxes, *picks)
        if not kept:  # discarded while written: nothing pours back in (see follow_new_swipe)
            yield (*empty_desk(), gr.Row(visible=False), *[gr.Textbox(value="", visible=False)] * MAX_ALTERNATIVES,
                   *picks_hidden)

    def follow(self, story_id, name, key, lang):
        """In a reloaded (or another) tab of the writer, the model turn they started, where it is, to its end.

        The page script asks when it opens a story whose model turn is being written for this writer."""
        if story_id is None or not (name or "").strip():
            return
        name = name.strip()
        job = self.services.jobs.running(job_key(story_id, name, key))
        if job is None:
            return
        shown = 0.0
        try:
            for texts, done in job.follow():
                if done is None and time.monotonic() - shown >= SHOW_EVERY_S and texts:
                    shown = time.monotonic()
                    yield writing_desk(texts[0])
        except (gr.Error, StoryError):
            pass  # the tab that asked showed why; this one shows what the store holds
        yield self._show(lang, my_turn_view(self.services.store, story_id, name, key))

    def stop_generation(self, story_id, name, key):
        """Stop this writer's model turn on the story, from whichever of their tabs (it keeps what was written)."""
        if story_id is not None and (name or "").strip():
            self.services.stops.cancel(job_key(story_id, name.strip(), key), "stop")

    # -- choosing among the turn's suggestions ------------------------------------------------------

    def pick(self, i: int, view, lang):
        """Show the i-th of the suggestions written side by side."""
        if not view or i >= len(view.get("alts", [])) or view["alts"][i] not in view["ids"]:
            return [gr.skip()] * DESK_SLOTS
        return self._show(lang, {**view, "index": view["ids"].index(view["alts"][i])})

    def flip(self, step: int, view, lang):
        """Show the suggestion `step` places before (-1) or after (+1) the one shown, stopping at either end."""
        if not view or not view.get("ids"):
            return empty_desk()
        if step > 0 and view["index"] >= len(view["ids"]) - 1:
            return [gr.skip()] * DESK_SLOTS  # past the last: the page asked the model for a new one instead
        index = min(max(view["index"] + step, 0), len(view["ids"]) - 1)
        return self._show(lang, {**view, "index": index})

    def sync_turn(self, story_id, name, key, lang):
        """Load the suggestions waiting in this writer's turn (the page script asks, e.g. in a second tab)."""
        if story_id is None:
            return [gr.skip()] * DESK_SLOTS
        return self._show(lang, my_turn_view(self.services.store, story_id, (name or "").strip(), key))

    # -- a suggestion whose writer left, and one that is no longer this writer's -----------------------

    def take_over(self, story_id, name, key, lang):
        """Take over a co-writer's finished suggestion after they left the story: it shows here, to accept as
        is, edit, regenerate or discard (they are credited for asking, this writer for choosing)."""
        sid = _need_story(story_id, lang)
        name = _need_name(name, lang)
        store = self.services.store
        turn = store.ai_turn(sid)
        try:
            store.take_over_ai_turn(sid, name, grace=turn_grace_s(), idle_ttl=self.services.ai_turn.idle_s,
                                    writer_key=key)
        except TurnBusy as e:  # its writer is here, came back, or the model is writing: nothing changes here
            warn(lang, say(lang, "takeover_too_soon", holder=_esc(e.holder)))
            return [gr.skip()] * DESK_SLOTS
        except NotFound:
            warn(lang, say(lang, "takeover_nothing"))
            return [gr.skip()] * DESK_SLOTS
        except StoryError as e:
            raise user_error(lang, e) from None
        if turn is not None:
            info(lang, say(lang, "taken_over", holder=_esc(turn.holder)))
        return self._show(lang, my_turn_view(store, sid, name, key))

    def turn_ended(self, story_id, name, key, view, lang):
        """The page script saw this writer's model turn end elsewhere (taken over or expired): in place of the
        dead suggestion, say what happened; nothing is left to accept. Own accepts and discards clear quietly."""
        if story_id is None or not view or not view.get("ids"):
            return [gr.skip()] * DESK_SLOTS
        store = self.services.store
        if my_turn_view(store, story_id, (name or "").strip(), key) is not None:
            return [gr.skip()] * DESK_SLOTS  # still this writer's (a late message)
        try:
            shown = store.get_candidate(view["ids"][view["index"]])
        except NotFound:
            shown = None
        if shown is not None and shown.status != "open":
            return empty_desk()  # accepted or discarded (by this writer, or after a takeover by the taker)
        turn = store.ai_turn(story_id)
        if turn is not None and shown is not None and any(c.id == shown.id for c in turn.candidates):
            return ended_desk(say(lang, "turn_taken", holder=_esc(turn.holder)))
        return ended_desk(say(lang, "turn_expired"))

    # -- ending the turn ----------------------------------------------------------------------------

    def accept(self, story_id, view, text, name, key, lang):
        """Keep the suggestion shown (as edited in the box) as the story's next paragraph."""
        _need_story(story_id, lang)
        name = _need_name(name, lang)
        if not view or not view.get("ids"):
            raise user_error(lang, say(lang, "no_candidate"))
        if not (text or "").strip():
            raise user_error(lang, say(lang, "empty_candidate"))
        store = self.services.store
        turn = store.ai_turn(story_id)
        if turn is not None and turn.status == "writing":
            # A new suggestion is being written: what the box shows is half of it, not the one to accept.
            raise user_error(lang, say(lang, "still_writing"))
        candidate_id = view["ids"][view["index"]]
        try:
            store.accept_candidate(candidate_id, name, text=text, expected_head=view["expected_head"], writer_key=key)
        except StaleHeadError as e:
            # Read the new paragraph, then accept again: this time after it.
            warn(lang, say(lang, "stale_moved"))
            return [gr.skip(), {**view, "expected_head": e.head.id if e.head else 0}] + [gr.skip()] * (DESK_SLOTS - 2)
        except TurnLost as e:
            warn(lang, say(lang, "turn_lost", holder=_esc(e.holder)))
            return empty_desk()
        except StoryError as e:
            raise user_error(lang, e, action="accept") from None
        info(lang, say(lang, "accepted"))
        return empty_desk()

    def discard(self, story_id, name, key, lang):
        """Stop a suggestion being written and throw away this writer's turn (from any of their tabs)."""
        if story_id is None or not (name or "").strip():
            return empty_desk()
        name = name.strip()
        turn_key, stops = job_key(story_id, name, key), self.services.stops
        stops.cancel(turn_key, "discard")
        # Let a running generation end first, so none of its text reaches the box after it is cleared.
        stops.wait_stopped(turn_key, DISCARD_WAIT_S)
        try:
            self.services.store.discard_ai_turn(story_id, name, writer_key=key)
        except (NotFound, NotAllowed):
            pass  # nothing of this writer's to throw away: the box is simply cleared
        return empty_desk()

    def touch(self, story_id, name, key, view, text):
        """While the writer edits a suggestion, keep its turn from timing out; an untouched one still times out.

        Outputs: the touch timer, the view.
        """
        if story_id is None or not view:
            return gr.Timer(active=False), gr.skip()
        if view.get("seen_text") == text:
            return gr.skip(), gr.skip()  # no edit since the last tick: idle
        try:
            self.services.store.touch_ai_turn(story_id, (name or "").strip(), self.services.ai_turn.idle_s,
                                              writer_key=key)
        except StoryError:
            return gr.Timer(active=False), gr.skip()
        return gr.skip(), {**view, "seen_text": text}

    def reuse_seed(self, view):
        """The seed of the suggestion shown, for the settings' seed box ("" when it had none)."""
        if not view or not view.get("ids"):
            return gr.skip()
        seed = self.services.store.get_candidate(view["ids"][view["index"]]).meta.get("seed")
        return "" if seed is None else str(seed)
