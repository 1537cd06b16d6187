"""UI text of the token probability view and of branching a suggestion at a token, Korean first
(merged into relay.ui_text.TEXT)."""

TOKEN_TEXT: dict[str, tuple[str, str]] = {
    "probs_toggle": ("확률 보기", "Show probabilities"),
    "probs_legend": ("모델이 고른 토큰의 확률:", "Probability of each token the model chose:"),
    "probs_band_0": ("5% 미만", "under 5%"),
    "probs_band_1": ("5–20%", "5–20%"),
    "probs_band_2": ("20–50%", "20–50%"),
    "probs_band_3": ("50–80%", "50–80%"),
    "probs_band_4": ("80% 이상", "80% or more"),
    "probs_hint": ("토큰에 마우스를 올리거나 누르면 다른 후보가 보입니다.",
                   "Hover over or tap a token to see what else the model considered."),
    "probs_none": ("이 글에는 토큰 확률 기록이 없습니다.", "No token probabilities were recorded for this text."),
    "probs_edited": ("사람이 고친 문단입니다. 확률은 모델이 처음 쓴 글의 것입니다.",
                     "A person edited this text; the probabilities are for the model's original text."),
    "probs_chosen": ("고른 토큰", "Chosen token"),
    "probs_alternatives": ("이 자리의 후보", "Candidates at this position"),
    "probs_branch": ("이 토큰으로 다시 쓰기", "Rewrite with this token"),
    "probs_here": ("여기서부터 다시 쓰기", "Rewrite from here"),
    "probs_close": ("닫기", "Close"),
    "extend": ("더 쓰기", "Write more"),
    "probs_branch_nothing": ("다시 쓸 후보가 없습니다. 먼저 'AI 이어쓰기'를 누르세요.",
                       "There is no suggestion to rewrite; press 'AI continue' first."),
    "probs_branch_bad_place": ("그 자리에서는 다시 쓸 수 없습니다. 후보를 다시 보고 토큰을 고르세요.",
                         "That position cannot be rewritten; look at the suggestion again and pick a token."),
    "probs_branch_no_tokens": ("이 후보에는 토큰 기록이 없어 그 자리에서 다시 쓸 수 없습니다.",
                         "This suggestion has no token record, so it cannot be rewritten at a token."),
}
