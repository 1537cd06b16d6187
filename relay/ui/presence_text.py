"""The strings of who is here, of the model's turn changing hands, and of the next seed of a turn
(relay/ui/presence_view.py, relay/ui/desk.py)."""

PRESENCE_TEXT: dict[str, tuple[str, str]] = {
    "here_now": ("👥 지금 여기: {names}", "👥 Here now: {names}"),
    "here_guests": ("읽는 사람 {n}명", "{n} reading"),
    "turn_holder": ("🤖 AI 차례: <b>{holder}</b>", "🤖 Model's turn: <b>{holder}</b>"),
    "turn_holder_away": ("🤖 AI 차례: <b>{holder}</b> (자리 비움)", "🤖 Model's turn: <b>{holder}</b> (away)"),
    "take_over": ("이어받기", "Take over"),
    "seed_next": ("같은 시드는 같은 글을 다시 쓰므로 시드 {next}({seed}+{n})로 썼습니다.",
                  "The same seed would write the same text again, so seed {next} ({seed}+{n}) was used."),
    "takeover_too_soon": ("{holder}님이 아직 자리에 있거나 방금 떠났습니다. 잠시 후 다시 시도하세요.",
                          "{holder} is still here or has only just left; try again in a moment."),
    "takeover_nothing": ("이어받을 후보가 없습니다.", "There is no waiting suggestion to take over."),
    "turn_taken": ("{holder}님이 이 후보를 이어받았습니다. 이 후보는 더 이상 채택할 수 없습니다.",
                   "{holder} took over this suggestion; it can no longer be added by you."),
    "turn_expired": ("오래 움직임이 없어 AI 차례가 풀렸습니다. 이 후보는 더 이상 채택할 수 없습니다. 다시 요청하세요.",
                     "You were idle too long, so the model's turn was freed; this suggestion can no longer be added. "
                     "Ask the model again."),
    "taken_over": ("{holder}님의 후보를 이어받았습니다: 채택하거나 고치거나 다시 쓰거나 버릴 수 있습니다.",
                   "You took over {holder}'s suggestion: accept, edit, regenerate or discard it."),
}
