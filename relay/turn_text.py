"""Messages of rewriting a suggestion from one of its tokens and of continuing it ("더 쓰기"), Korean first
(merged into relay.ui_text.TEXT; relay/turns.py says them)."""

TURN_TEXT: dict[str, tuple[str, str]] = {
    "bad_position": ("{what}은(는) 0 이상의 정수여야 합니다 (받은 값: {got}).",
                     "{what} must be a whole number of 0 or more (got {got})."),
    "branch_not_this_turn": ("그 후보는 이 이야기의 지금 차례 후보가 아닙니다 (이미 받아들였거나 버렸거나 다른 이야기의 것입니다). "
                             "지금 후보를 다시 보세요.",
                             "That suggestion is not a waiting suggestion of this story's current turn (it was "
                             "accepted, discarded, or belongs to another story); look at the current suggestions."),
    "branch_at_range": ("{at}번째 자리는 없습니다: 이 후보는 토큰 {count}개입니다 (0~{last}).",
                        "There is no position {at}: this suggestion has {count} tokens (0 to {last})."),
    "branch_choice_range": ("그 자리의 후보는 {count}개입니다 (0~{last}); {choice}번은 없습니다.",
                            "That position has {count} alternatives (0 to {last}); there is no alternative {choice}."),
    "branch_too_long": ("남길 앞부분이 {kept}토큰입니다. 최대 길이({max})를 그보다 길게 하세요.",
                        "The kept part is {kept} tokens; raise the max length (now {max}) above that."),
    "extend_full": ("이 후보는 이미 한 번에 쓸 수 있는 만큼 깁니다 ({limit}토큰). 받아들이고 다음 차례에 이어 쓰세요.",
                    "This suggestion is already as long as one turn can be ({limit} tokens); accept it and "
                    "continue in the next turn."),
}
