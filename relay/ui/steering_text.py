"""UI text of steering the model (memory, author's note, story cards, "what the model reads"), Korean first
(merged into relay.ui_text.TEXT)."""

STEERING_TEXT: dict[str, tuple[str, str]] = {
    # the panel
    "steer_title": ("모델이 읽는 것 · 기억 · 작가의 말 · 설정 카드", "What the model reads · memory · author's note · story cards"),
    "steer_intro": (
        "KoGPT-2는 마지막 약 1,024토큰만 읽습니다. **기억**은 매 차례 맨 위에 고정되고, **작가의 말**은 끝에서 정한 문단 수만큼 앞에 "
        "들어가며, **설정 카드**는 키(이름 등)가 최근 문단에 나오면 들어갑니다. 이 이야기를 쓰는 모두가 함께 보고 고칩니다.",
        "KoGPT-2 reads only about the last 1,024 tokens. **Memory** is pinned at the top every turn, the **author's note** goes "
        "a chosen number of paragraphs before the end, and a **story card** comes in when one of its keys (a name…) appears "
        "in the latest paragraphs. Everyone writing this story sees and edits them.",
    ),
    "steer_shared": ("이 이야기의 기억·작가의 말·카드 (모두에게 실시간으로 보임)", "This story's memory, note and cards (live for everyone)"),
    "steer_reads": ("모델이 다음 차례에 읽을 글", "What the model reads next turn"),
    "steer_refresh": ("새로 보기", "Refresh"),
    "steer_memory": ("이야기 기억 (매 차례 맨 위에 고정, 500자까지)", "Story memory (pinned at the top every turn, up to 500 characters)"),
    "steer_memory_ph": ("예: 배경은 1970년대 부산. 주인공 민지는 열일곱 살, 우체국 집 딸이다.",
                        "e.g. Busan in the 1970s. Minji, seventeen, is the post office keeper's daughter."),
    "steer_memory_save": ("기억 저장", "Save memory"),
    "steer_note": ("작가의 말 (500자까지)", "Author's note (up to 500 characters)"),
    "steer_note_ph": ("예: 짧은 문장으로, 긴장감 있게.", "e.g. Short sentences, rising tension."),
    "steer_note_depth": ("끝에서 몇 문단 앞에 넣을까요 (0 = 모델이 쓰기 바로 앞)", "Paragraphs before the end (0 = right before the model writes)"),
    "steer_note_save": ("작가의 말 저장", "Save note"),
    "steer_turn_note": ("이번 AI 차례에만 쓸 작가의 말 (나만, 저장되지 않음)", "A note for the next model turn only (yours, not saved)"),
    "steer_cards": ("설정 카드", "Story cards"),
    "steer_card_pick": ("고칠 카드", "Card to edit"),
    "steer_card_new": ("＋ 새 카드", "+ New card"),
    "steer_card_name": ("카드 이름", "Card name"),
    "steer_card_keys": ("키 (쉼표로 구분, 10개까지). '민지'는 '민지는', '민지에게'에도 맞습니다.",
                        "Keys (comma-separated, up to 10). A key also matches with a Korean particle after it, never inside another word."),
    "steer_card_text": ("카드 글 (모델이 읽을 설명, 500자까지)", "Card text (what the model reads, up to 500 characters)"),
    "steer_card_priority": ("우선순위 (자리가 모자라면 낮은 것부터 빠짐)", "Priority (when room runs short, lower ones drop first)"),
    "steer_card_always": ("키와 상관없이 항상 넣기", "Always on (whatever the keys)"),
    "steer_card_enabled": ("사용", "Enabled"),
    "steer_card_inside": ("단어 안에서도 찾기 (예: '달'이 '달리다'에도 맞음)", "Match inside other words too (e.g. \"moon\" in \"moonlight\")"),
    "steer_card_save": ("카드 저장", "Save card"),
    "steer_card_delete": ("카드 지우기", "Delete card"),
    "steer_scan_depth": ("카드 키를 찾을 최근 문단 수", "Latest paragraphs searched for card keys"),
    "steer_scan_save": ("적용", "Apply"),
    "steer_lock": ("잠금: 이야기를 만든 이만 고칠 수 있음", "Locked: only the story's creator can change these"),
    # the shared view (live)
    "steer_live_memory": ("기억", "Memory"),
    "steer_live_note": ("작가의 말 · 끝에서 {depth}문단 앞", "Author's note · {depth} paragraph(s) before the end"),
    "steer_live_cards": ("설정 카드 {n}개 · 최근 {scan}문단에서 키를 찾음", "{n} story card(s) · keys searched in the latest {scan} paragraph(s)"),
    "steer_live_none": ("(없음)", "(none)"),
    "steer_live_by": ("{version}판 · {who} · {when}", "version {version} · {who} · {when}"),
    "steer_live_locked": ("🔒 만든 이만 고칠 수 있음", "🔒 only the creator can change these"),
    "steer_live_card_off": ("꺼짐", "off"),
    "steer_live_card_always": ("항상", "always"),
    "steer_live_card_inside": ("단어 안에서도", "inside words"),
    # what the model reads
    "ctx_summary": ("{total} / {window} 토큰: 기억 {memory} · 카드 {cards}개 ({card_tokens}) · 이야기 {paragraphs}문단 ({story}) · "
                    "작가의 말 {note} · 쓸 자리 {room}",
                    "{total} / {window} tokens: memory {memory} · cards {cards} ({card_tokens}) · story {paragraphs} "
                    "paragraph(s) ({story}) · note {note} · room to write {room}"),
    "ctx_block_memory": ("기억 · {n}토큰", "Memory · {n} tokens"),
    "ctx_block_card": ("카드 「{name}」 · {n}토큰 · {seq}번 문단의 '{word}'에서 키 '{trigger}'",
                       "Card “{name}” · {n} tokens · key “{trigger}” in “{word}” (paragraph {seq})"),
    "ctx_block_card_always": ("카드 「{name}」 · {n}토큰 · 항상 넣기", "Card “{name}” · {n} tokens · always on"),
    "ctx_block_story": ("이야기 {first}–{last}번 문단 · {n}토큰", "Story, paragraphs {first}–{last} · {n} tokens"),
    "ctx_block_story_cut": ("이야기 {first}–{last}번 문단 · {n}토큰 ({first}번은 뒷부분만)",
                            "Story, paragraphs {first}–{last} · {n} tokens (only the end of {first})"),
    "ctx_block_note": ("작가의 말 · {n}토큰 · 끝에서 {depth}문단 앞", "Author's note · {n} tokens · {depth} paragraph(s) before the end"),
    "ctx_block_start": ("이야기 시작 (빈 이야기: 모델이 첫 문단을 씁니다)", "Story start (an empty story: the model writes the first paragraph)"),
    "ctx_dropped_paragraphs": ("창 밖으로 빠진 문단: 1–{last}번 ({n}개)", "Fell out of the window: paragraphs 1–{last} ({n})"),
    "ctx_dropped_none": ("빠진 문단 없음: 모델이 이야기 전체를 읽습니다.", "Nothing fell out: the model reads the whole story."),
    "ctx_dropped_cards": ("자리가 없어 빠진 카드 (우선순위 낮은 것부터): {names}", "Cards left out for lack of room (lowest priority first): {names}"),
    "ctx_waiting_cards": ("키가 아직 최근 {scan}문단에 없는 카드: {names}", "Cards whose keys are not in the latest {scan} paragraph(s) yet: {names}"),
    # budget problems (the block is named; nothing is cut)
    "steer_too_long_memory": (
        "이야기 기억이 너무 깁니다: 모델이 이야기를 읽을 자리가 {left}토큰밖에 남지 않습니다 (적어도 {need}토큰 필요). "
        "기억을 줄이거나 샘플링 설정의 최대 길이를 낮추세요.",
        "The story memory is too long: it leaves the story only {left} tokens of what the model reads (it needs at least "
        "{need}). Shorten the memory, or lower the max length in the sampling settings.",
    ),
    "steer_too_long_note": (
        "작가의 말이 너무 깁니다: 모델이 이야기를 읽을 자리가 {left}토큰밖에 남지 않습니다 (적어도 {need}토큰 필요). "
        "작가의 말을 줄이거나 샘플링 설정의 최대 길이를 낮추세요.",
        "The author's note is too long: it leaves the story only {left} tokens of what the model reads (it needs at least "
        "{need}). Shorten the note, or lower the max length in the sampling settings.",
    ),
    "steer_turn_note_too_long": ("이번 차례의 작가의 말은 {limit}자까지 쓸 수 있습니다.", "The note for this turn can be at most {limit} characters."),
    # size limits (relay.store.steering), by what is too long
    "steer_limit_memory": ("이야기 기억은 {limit}자까지 쓸 수 있습니다 (지금 {got}자). 줄인 뒤 다시 저장하세요.",
                           "The story memory can be at most {limit} characters (it has {got}). Shorten it, then save again."),
    "steer_limit_note": ("작가의 말은 {limit}자까지 쓸 수 있습니다 (지금 {got}자). 줄인 뒤 다시 저장하세요.",
                         "The author's note can be at most {limit} characters (it has {got}). Shorten it, then save again."),
    "steer_limit_card_text": ("카드 글은 {limit}자까지 쓸 수 있습니다 (지금 {got}자).", "A card's text can be at most {limit} characters (it has {got})."),
    "steer_limit_keys": ("카드 하나에 키는 {limit}개까지입니다 (지금 {got}개).", "A card has at most {limit} keys (it has {got})."),
    "steer_limit_key": ("키 하나는 {limit}자까지입니다.", "A key can be at most {limit} characters."),
    "steer_limit_cards": ("한 이야기에 카드는 {limit}개까지입니다. 먼저 카드 하나를 지우세요.", "A story holds at most {limit} cards; delete one first."),
    "err.SteeringChanged": ("그사이 다른 작가가 이것을 고쳤습니다. 위에서 새 내용을 확인한 뒤 다시 저장하세요. 쓰던 글은 그대로 있습니다.",
                            "Someone changed this meanwhile. Read the new version above, then save again; your text is still here."),
    "err.SteeringLocked": ("이야기를 만든 이가 기억·작가의 말·카드를 잠갔습니다. 만든 이만 고칠 수 있습니다.",
                           "The story's creator has locked its memory, note and cards; only they can change them."),
    "err.steering.InvalidInput": ("받아들일 수 없는 입력입니다. 카드 이름과 글이 비어 있지 않은지, 숫자가 범위 안인지 확인하세요.",
                                  "That can't be used: check that the card has a name and text, and that the numbers are in range."),
    # done
    "steer_memory_saved": ("기억을 저장했습니다 ({version}판).", "Memory saved (version {version})."),
    "steer_note_saved": ("작가의 말을 저장했습니다 ({version}판).", "Author's note saved (version {version})."),
    "steer_card_saved": ("카드 「{name}」을(를) 저장했습니다 ({version}판).", "Card “{name}” saved (version {version})."),
    "steer_card_deleted": ("카드를 지웠습니다. 기록과 JSON 내려받기에는 남아 있습니다.", "Card deleted; it stays in the history and the JSON download."),
    "steer_scan_saved": ("이제 최근 {n}문단에서 카드 키를 찾습니다.", "Cards now look for their keys in the latest {n} paragraph(s)."),
    "steer_lock_saved": ("잠갔습니다: 이제 만든 이만 고칠 수 있습니다.", "Locked: only you, the creator, can change these now."),
    "steer_unlock_saved": ("잠금을 풀었습니다: 이 이야기를 쓰는 누구나 고칠 수 있습니다.", "Unlocked: anyone writing this story can change these."),
    "steer_need_card": ("지울 카드를 먼저 고르세요.", "Pick the card to delete first."),
}
