"""UI text of the live story view and the model's turn, Korean first (merged into relay.ui_text.TEXT)."""

STORY_TEXT: dict[str, tuple[str, str]] = {
    "ai_pending_status": ("<b>{holder}</b>님이 AI 후보를 고르는 중입니다.", "<b>{holder}</b> is choosing among the model's suggestions."),
    "watch_writing": ("AI가 <b>{holder}</b>님을 위해 쓰는 중 (초안)", "The model is writing for <b>{holder}</b> (draft)"),
    "watch_pending": ("<b>{holder}</b>님이 고를 AI 후보 {n}개", "{n} suggestion(s) waiting for <b>{holder}</b>"),
    "ai_pending_busy": (
        "{holder}님이 AI 후보를 고르는 중입니다. 채택하거나 버리면(또는 오래 움직임이 없으면) 차례가 풀리고, "
        "자리를 비우면 이어받을 수 있습니다.",
        "{holder} is still choosing among the model's suggestions. The turn frees up once they accept or discard "
        "(or stay idle too long); if they leave, you can take it over.",
    ),
    "turn_lost": (
        "오래 움직임이 없었거나 자리를 비운 사이 AI 차례가 {holder}님에게 넘어갔습니다. 이 후보는 더 이상 채택할 수 없습니다. "
        "차례가 오면 다시 요청하세요.",
        "You were idle too long or away, so the model's turn went to {holder}. This suggestion can no longer "
        "be added; ask the model again when it is your turn.",
    ),
    "stopped_disconnect": ("창이 닫혀 멈춤", "stopped: the page was closed"),
    "still_writing": ("AI가 아직 쓰는 중입니다. 다 쓴 뒤에 채택하세요.", "The model is still writing; accept once it is done."),
    "swipe_of": ("후보 {i}/{n}", "Suggestion {i}/{n}"),
    "swipe_prev": ("← 이전 후보", "← Previous"),
    "swipe_next": ("다음 후보 →", "Next →"),
    "discarded": ("AI 후보를 버렸습니다.", "The suggestions were discarded."),
    "stale_moved": (
        "그사이 이야기에 새 문단이 생겼습니다. 새 문단을 읽은 뒤 한 번 더 '채택'을 누르면 그 뒤에 붙습니다.",
        "The story moved on meanwhile. Read the new paragraph, then press 'Accept' again to add this after it.",
    ),
    "model_jobs_cap": (
        "AI 요청이 이미 {n}개 진행 중입니다. 끝난 뒤 다시 요청하세요.",
        "You already have {n} model requests running; ask again when one is done.",
    ),
    "too_many_tabs": ("지금 이 서버에 열린 탭이 너무 많습니다. 잠시 뒤 새로고침하세요.", "Too many open tabs on this server right now; reload in a moment."),
}
