"""Who is here, as every tab on a story shows it: the writers with a tab open now (from the live
connections, across processes: relay/store/presence.py) and who holds the model's turn, with whether
a co-writer may take over their waiting suggestion (and from when)."""

from __future__ import annotations

from relay.ui.render import _esc as esc
from relay.turns import turn_grace_s
from relay.ui_text import say



def presence_parts(store, story_id: int, turn, lang: str) -> tuple[str, float | None]:
    """The "who is here" line (HTML, names escaped) and when a co-writer may take over the waiting
    suggestion (unix time, None if not now: its writer is here, or nothing waits)."""
    here = store.here(story_id)
    named = [name for _, name in here if name]
    guests = len(here) - len(named)
    parts = [esc(name) for name in named] + ([say(lang, "here_guests", n=guests)] if guests else [])
    line = say(lang, "here_now", names=", ".join(parts)) if parts else ""
    takeover_at = store.takeover_at(story_id, turn_grace_s()) if turn is not None else None
    if turn is not None:
        away = turn.holder_id is not None and turn.holder_id not in {wid for wid, _ in here}
        key = "turn_holder_away" if away else "turn_holder"
        line = " · ".join(p for p in (line, say(lang, key, holder=esc(turn.holder))) if p)
    return (f'<div class="relay-presence">{line}</div>' if line else ""), takeover_at


def ai_gate(story, head, turn, lang: str) -> dict:
    """Why "AI 이어쓰기" cannot be pressed now, for the page to disable it and show the reason (plain text: the
    page sets it as text): "rule" when the turn rule wants a person first, "busy" when someone's model turn is
    live (not a reason for its holder, `holder_id`, who may ask again)."""
    rule = say(lang, "not_ai_turn") if story.turn_rule == "alternate" and (head is None or head.kind == "ai") else ""
    busy, holder_id = "", None
    if turn is not None:
        busy = say(lang, "ai_busy" if turn.status == "writing" else "ai_pending_busy", holder=turn.holder)
        holder_id = turn.holder_id
    return {"rule": rule, "busy": busy, "holder_id": holder_id}
