"""Messages for limits, writer keys and ids, in Korean (first) and English, like relay/ui_text.py.

`TEXT` has the same shape as relay.ui_text.TEXT (key: (Korean, English)); `say(lang, key, **values)`
works like relay.ui_text.say, and `limit_message(lang, error)` turns a relay.limits.LimitExceeded
into the sentence for that limit. Values are plain text here: toasts escape them (toast_text).
"""

from __future__ import annotations

TEXT: dict[str, tuple[str, str]] = {
    # rates (relay/limits.py)
    "limit_paragraph": (
        "문단을 너무 빨리 추가하고 있습니다 (1분에 {limit}개까지). {retry}초 뒤에 다시 시도하세요. 쓰던 글은 그대로 있습니다.",
        "You are adding paragraphs too fast (at most {limit} a minute). Try again in {retry} s; your draft is kept.",
    ),
    "limit_story": (
        "새 이야기를 너무 많이 만들었습니다 (1시간에 {limit}개까지). {retry}초 뒤에 다시 시도하세요.",
        "Too many new stories (at most {limit} an hour). Try again in {retry} s.",
    ),
    "limit_model_turn": (
        "AI에게 너무 자주 요청했습니다 (1분에 {limit}번까지). {retry}초 뒤에 다시 시도하세요.",
        "Too many requests to the model (at most {limit} a minute). Try again in {retry} s.",
    ),
    "limit_candidates": (
        "AI 후보를 너무 많이 만들었습니다 (1분에 {limit}개까지). {retry}초 뒤에 다시 시도하거나 후보 개수를 줄이세요.",
        "Too many model candidates (at most {limit} a minute). Try again in {retry} s or ask for fewer.",
    ),
    "limit_lab_samples": (
        "실험실 표본을 너무 많이 만들었습니다 (1분에 {limit}개까지). {retry}초 뒤에 다시 시도하거나 표본·점 수를 줄이세요.",
        "Too many lab samples (at most {limit} a minute). Try again in {retry} s or ask for fewer samples or points.",
    ),
    "limit_writer_key": (
        "이 주소에서 작가 키를 너무 많이 받았습니다 (1시간에 {limit}개까지). 이미 받은 키를 계속 쓰세요. {retry}초 뒤에 다시 받을 수 있습니다.",
        "Too many writer keys for this address (at most {limit} an hour). Keep using the key you have; a new one is available in {retry} s.",
    ),
    "limit_model_slots": (
        "이미 AI 작업 {limit}개가 기다리거나 실행 중입니다. 하나가 끝난 뒤에 다시 시도하세요.",
        "You already have {limit} model jobs waiting or running. Try again when one has finished.",
    ),
    "limit_model_busy": (
        "지금 AI가 많은 작업을 처리하고 있습니다 (동시에 {limit}개). 잠시 뒤에 다시 시도하세요.",
        "The model is busy with many jobs right now ({limit} at once). Try again in a moment.",
    ),
    "limit_context": (
        "맥락이 너무 깁니다 ({length:,}자, 최대 {limit:,}자). 앞부분을 줄이세요. 모델은 어차피 마지막 약 2,500자만 읽습니다.",
        "The context is too long ({length:,} characters, at most {limit:,}). Shorten its beginning; the model reads only about the last 2,500 characters anyway.",
    ),
    # writer keys (API and page)
    "need_writer_key": (
        "작가 키(writer_key)가 필요합니다. 먼저 /writer_key 에서 키를 받아 모든 쓰기 요청에 넣으세요.",
        "A writer_key is required. Get one from /writer_key first and pass it with every request that writes.",
    ),
    "bad_writer_key": (
        "작가 키(writer_key) 형식이 잘못되었습니다. /writer_key 에서 새 키를 받으세요.",
        "The writer_key is malformed. Get a new one from /writer_key.",
    ),
    "unknown_writer_key": (
        "이 사이트가 발급하지 않은 작가 키(writer_key)입니다. /writer_key 에서 키를 받아 쓰세요.",
        "This writer_key was not issued by this site. Get one from /writer_key.",
    ),
    "name_taken": (
        "이 이야기에서 '{name}' 이름은 다른 작가가 쓰고 있습니다. 다른 필명을 쓰세요.",
        "Another writer already uses the name '{name}' in this story. Pick another writer name.",
    ),
    # ids and arguments
    "bad_id": (
        "{what}은(는) 1 이상의 정수여야 합니다 (받은 값: {got}).",
        "{what} must be a whole number of 1 or more (got {got}).",
    ),
    "bad_head": (
        "expected_head는 마지막으로 본 문단의 번호(id)이거나, 빈 이야기면 0이어야 합니다 (받은 값: {got}).",
        "expected_head must be the id of the last paragraph you saw, or 0 for an empty story (got {got}).",
    ),
    "bad_text_arg": (
        "{what}은(는) 문자열이어야 합니다 (받은 값: {got}).",
        "{what} must be a string (got {got}).",
    ),
    "bad_settings_arg": (
        "settings는 JSON 객체(dict)여야 합니다. 예: {{\"temperature\": 0.8, \"seed\": 7}}",
        "settings must be a JSON object (a dict), e.g. {{\"temperature\": 0.8, \"seed\": 7}}.",
    ),
    "store_failed": ("저장하지 못했습니다: {detail}", "Could not save: {detail}"),
}


def say(lang: str, key: str, **values) -> str:
    """The message `key` in `lang` ("ko" or "en"), formatted with `values`."""
    ko, en = TEXT[key]
    return (en if lang == "en" else ko).format(**values)


def limit_values(error) -> dict:
    """The values a limit message is formatted with (limit, retry seconds)."""
    return {"limit": error.limit, "retry": error.retry_after_s}


def limit_message(lang: str, error, **values) -> str:
    """The message for a relay.limits.LimitExceeded (`length=` for the context limit)."""
    merged = {**limit_values(error), "length": 0, **values}
    return say(lang, f"limit_{error.action}", **merged)
