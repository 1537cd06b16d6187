"""Every string the web app shows, in Korean (first) and English.

Static labels reach the browser through `gr.I18n` (the browser's language picks one; Korean
browsers get Korean). Messages built on the server (warnings, the timeline, status lines) use
`say(lang, key, ...)` with the language taken from the request's Accept-Language header.
"""

from __future__ import annotations

LANGS = ("ko", "en")

# key: (Korean, English)
TEXT: dict[str, tuple[str, str]] = {
    # page
    "app_title": ("# 릴레이 소설 · Relay", "# Relay · 릴레이 소설"),
    "app_intro": (
        "여러 작가가 한 이야기를 번갈아 쓰고, KoGPT-2가 그 사이사이 문단을 이어 씁니다. 링크를 나누면 같은 이야기를 함께 씁니다.",
        "Several writers take turns on one story, and KoGPT-2 writes the paragraphs in between. Share a story's link to write it together.",
    ),
    "tiny_banner": (
        "⚠️ **시험용 모드**: 이 서버는 작은 무작위 모델(`--model tiny`)로 실행 중입니다. AI가 쓰는 글은 의미 없는 무작위 텍스트입니다.",
        "⚠️ **Test mode**: this server runs a tiny random model (`--model tiny`). The AI's text is random and means nothing.",
    ),
    "writer_name": ("필명", "Your writer name"),
    "writer_name_info": ("이 브라우저에 기억됩니다. 문단마다 이 이름이 붙습니다.", "Remembered in this browser; shown on every paragraph you write."),
    # tabs
    "tab_stories": ("이야기 목록", "Stories"),
    "tab_story": ("이야기", "Story"),
    "tab_lab": ("샘플링 실험실", "Sampling lab"),
    # story list
    "new_story": ("### 새 이야기", "### New story"),
    "new_title": ("제목", "Title"),
    "turn_rule": ("차례 규칙", "Turn rule"),
    "rule_alternate": ("번갈아 (사람 → AI → 사람 …)", "Alternate (human → AI → human …)"),
    "rule_free": ("자유롭게 (누구나, 아무 순서)", "Free (anyone, any order)"),
    "create": ("이야기 만들기", "Create story"),
    "refresh": ("새로고침", "Refresh"),
    "no_stories": ("아직 이야기가 없습니다. 첫 이야기를 만들어 보세요.", "No stories yet. Create the first one."),
    "col_title": ("제목", "Title"),
    "col_paragraphs": ("문단", "Paragraphs"),
    "col_activity": ("마지막 활동", "Last activity"),
    "col_by": ("만든 이", "Started by"),
    # story view
    "no_story_open": ("이야기 목록에서 이야기를 고르거나 새로 만드세요.", "Pick a story from the list or create a new one."),
    "share_link": ("공유 링크", "Share link"),
    "forked_from": ("갈래 원본: 이야기 #{story} 의 {seq}번째 문단", "Forked from story #{story}, paragraph {seq}"),
    "forked_from_story": ("갈래 원본: 이야기 #{story}", "Forked from story #{story}"),
    "reading_view": ("읽기 모드 (본문만)", "Reading view (just the novel)"),
    "empty_timeline": ("아직 문단이 없습니다. 첫 문단을 써 주세요.", "No paragraphs yet. Write the first one."),
    "older_paragraphs": ("이전 문단 더 보기", "Show earlier paragraphs"),
    "kind_human": ("사람", "human"),
    "kind_ai": ("AI", "AI"),
    "edited_mark": ("사람이 고침", "edited by a person"),
    "ai_for": ("{author}님이 고른 AI 문단", "AI paragraph accepted by {author}"),
    "ai_details": ("생성 정보", "Generation details"),
    "turn_next_human": ("다음은 <b>사람</b> 차례입니다.", "Next: a <b>human</b> turn."),
    "turn_next_ai": ("다음은 <b>AI</b> 차례입니다. 'AI 이어쓰기'를 누르세요.", "Next: the <b>AI's</b> turn. Press 'AI continue'."),
    "turn_free": ("자유 규칙: 누구나 아무 순서로 씁니다.", "Free rule: anyone writes, in any order."),
    "ai_busy_status": ("🤖 AI가 <b>{holder}</b>님을 위해 쓰는 중입니다…", "🤖 The model is writing for <b>{holder}</b>…"),
    "composer": ("내 문단", "Your paragraph"),
    "composer_ph": ("이야기를 이어 쓰세요…", "Continue the story…"),
    "add": ("문단 추가", "Add paragraph"),
    "ai_continue": ("AI 이어쓰기", "AI continue"),
    "stop": ("중지", "Stop"),
    "alternatives": ("여러 개 보기", "Show alternatives"),
    "n_alternatives": ("후보 개수", "Number of candidates"),
    "preview": ("AI 후보 (고친 뒤 채택할 수 있어요)", "AI candidate (edit before accepting if you like)"),
    "accept": ("채택", "Accept"),
    "regenerate": ("다시 쓰기", "Regenerate"),
    "discard": ("버리기", "Discard"),
    "pick": ("이 후보 고르기", "Pick this one"),
    "candidate_n": ("후보 {n}", "Candidate {n}"),
    "last_seed": ("마지막 생성: 시드 `{seed}` · {tokens}토큰 · {seconds:.1f}초 · {stopped}", "Last generation: seed `{seed}` · {tokens} tokens · {seconds:.1f}s · {stopped}"),
    "seed_placeholder": ("비우면 무작위", "empty = random"),
    "use_seed": ("이 시드 고정", "Reuse this seed"),
    "stopped_paragraph": ("문단 끝에서 멈춤", "stopped at paragraph end"),
    "stopped_sentence": ("문장 끝에서 멈춤", "stopped at sentence end"),
    "stopped_length": ("길이 한도에서 멈춤", "stopped at length limit"),
    "stopped_cancel": ("중지됨", "stopped by you"),
    # sampling
    "sampling": ("샘플링 설정", "Sampling settings"),
    "preset": ("프리셋", "Preset"),
    "reset_defaults": ("이야기 기본값으로", "Reset to story defaults"),
    "adapter": ("모델 / 어댑터", "Model / adapter"),
    "active_preset": ("**현재 설정:** {name}", "**Active settings:** {name}"),
    "active_preset_custom": ("**현재 설정:** 사용자 설정 (프리셋에서 바꿈)", "**Active settings:** custom (changed from a preset)"),
    "unsupported_setting": ("*{label}*: 이 모델을 돌리는 방식에서는 쓸 수 없어 숨겼습니다.",
                            "*{label}*: hidden, because the way this model runs cannot use it."),
    "base_model": ("기본 모델 (어댑터 없음)", "Base model (no adapter)"),
    # more
    "more": ("더 보기: 되돌리기 · 갈래 · 내려받기", "More: undo · fork · download"),
    "undo": ("내 마지막 문단 되돌리기", "Undo my last paragraph"),
    "fork_seq": ("갈래를 낼 문단 번호", "Fork at paragraph number"),
    "fork_title": ("새 갈래 제목", "Title of the fork"),
    "fork": ("여기서 갈래 만들기", "Fork here"),
    "export_fmt": ("형식", "Format"),
    "export_file": ("내려받을 파일", "File to download"),
    "export": ("내려받기", "Download"),
    # history (relay/ui/history.py)
    "history_title": ("### 문단 고치기 · 기록 · 갈래", "### Edit paragraphs · history · forks"),
    "history_seq": ("문단 번호", "Paragraph number"),
    "history_load": ("문단과 기록 보기", "Show paragraph and history"),
    "history_text": ("문단 글 (고친 뒤 저장하세요)", "Paragraph text (edit, then save)"),
    "history_save": ("고친 글 저장", "Save the edit"),
    "history_pick": ("문단 번호를 넣고 '문단과 기록 보기'를 누르세요.", "Enter a paragraph number and press 'Show paragraph and history'."),
    "history_never_edited": ("아직 아무도 고치지 않았습니다.", "Nobody has edited it yet."),
    "history_first_version": ("처음 글 · {editor}", "Original · {editor}"),
    "history_version": ("{version}판 · {editor}님이 고침", "Version {version} · edited by {editor}"),
    "history_restore_number": ("되돌릴 판 번호", "Version to bring back"),
    "history_restore": ("이 판으로 되돌리기", "Bring this version back"),
    "history_restored": ("{seq}번 문단을 {version}판 글로 되돌렸습니다 (새 판으로, 기록은 그대로).",
                         "Paragraph {seq} is back to version {version} (as a new version; the history is kept)."),
    "history_no_such_version": ("그 문단에는 {version}판이 없습니다. 기록에 있는 판 번호를 넣으세요.",
                                "That paragraph has no version {version}. Enter a version number from its history."),
    "history_need_seq": ("문단 번호를 입력하세요.", "Enter a paragraph number."),
    "history_saved": ("{seq}번째 문단을 고쳤습니다. 예전 글은 기록에 남아 있습니다.", "Paragraph {seq} is edited; the earlier text stays in its history."),
    "redo": ("되돌린 내 문단 다시 넣기", "Redo my undone paragraph"),
    "redone": ("되돌렸던 문단을 다시 넣었습니다.", "Your undone paragraph is back."),
    "rewrite": ("여기서부터 다시 쓰기", "Continue from here"),
    "fork_title_ph": ("비우면 '원래 제목 (갈래)'", "empty = 'original title (fork)'"),
    "fork_default_title": ("{title} (갈래)", "{title} (fork)"),
    "rewrite_opened": ("{seq}번째 문단 자리부터 다시 쓰는 갈래 이야기 #{story}를 열었습니다.", "Opened fork #{story} to write again from paragraph {seq}."),
    "import_label": ("이야기 가져오기 (릴레이에서 내려받은 JSON 파일)", "Import a story (a .json file downloaded from Relay)"),
    "import_choose": ("파일 고르기", "Choose a file"),
    "import_not_json": ("JSON 파일만 가져올 수 있습니다.", "Only JSON files (.json) can be imported."),
    "import_too_big": ("파일이 너무 큽니다. {mb}MB까지 가져올 수 있습니다.", "The file is too large; the limit is {mb} MB."),
    "imported": ("이야기를 가져왔습니다: #{story} {title}", "Imported the story: #{story} {title}"),
    "act_edit": ("고치기", "Edit"),
    "act_fork": ("갈래", "Fork"),
    "act_rewrite": ("여기서 다시", "Rewrite"),
    "act_edit_title": ("이 문단 고치기 · 예전 글 보기", "Edit this paragraph · see earlier versions"),
    "act_fork_title": ("여기서 갈래 만들기", "Fork here"),
    "act_rewrite_title": ("여기서부터 다시 쓰기 (이 문단 앞에서 갈래를 만들어 엽니다)", "Continue from here (a fork just before this paragraph)"),
    # lab
    "lab_intro": (
        "같은 맥락으로 여러 설정을 나란히 시험합니다. 마음에 드는 설정을 이야기에 적용하세요.",
        "Try several settings side by side on one context, then copy the best one into the story.",
    ),
    "lab_context": ("맥락 (빈 줄로 문단을 나눕니다. 한 줄 바꿈은 문단 안에 남습니다)", "Context (a blank line separates paragraphs; a single line break stays inside one)"),
    "lab_from_story": ("열린 이야기에서 가져오기", "Take from the open story"),
    "lab_columns": ("비교할 설정 수", "Settings to compare"),
    "lab_run": ("함께 생성", "Generate all"),
    "lab_column": ("설정 {n}", "Setting {n}"),
    "lab_output": ("결과", "Output"),
    "lab_use": ("이 설정을 이야기에 적용", "Use these settings in the story"),
    "lab_applied": ("설정 {n}을(를) 이야기의 샘플링 설정에 넣었습니다.", "Copied setting {n} into the story's sampling settings."),
    # messages
    "need_name": ("먼저 필명을 입력하세요.", "Enter your writer name first."),
    "need_story": ("먼저 이야기를 여세요.", "Open a story first."),
    "story_not_found": ("그런 이야기가 없습니다 (#{story}).", "There is no story #{story}."),
    "stale_head": (
        "그사이 다른 작가가 문단을 추가했습니다. 새 문단을 확인하세요. 쓰던 글은 그대로 남아 있습니다.",
        "Someone added a paragraph meanwhile. Read the new paragraph; your draft is still in the box.",
    ),
    "stale_candidate": (
        "그사이 이야기가 바뀌었습니다. 새 문단을 확인하고 다시 쓰거나 다시 채택하세요. 후보 글은 그대로 있습니다.",
        "The story moved on meanwhile. Read the new paragraph, then regenerate or accept again; the candidate is still here.",
    ),
    "not_ai_turn": ("지금은 사람 차례입니다. 먼저 사람이 문단을 쓰세요.", "It is a human's turn: a person writes the next paragraph first."),
    "not_human_turn": ("지금은 AI 차례입니다. 'AI 이어쓰기'를 누르세요.", "It is the AI's turn: press 'AI continue'."),
    "ai_busy": ("지금 AI가 {holder}님을 위해 쓰고 있습니다. 끝나면 다시 시도하세요.", "The model is writing for {holder} right now; try again when it is done."),
    "no_candidate": ("채택할 AI 후보가 없습니다. 먼저 'AI 이어쓰기'를 누르세요.", "There is no AI candidate to accept. Press 'AI continue' first."),
    "empty_candidate": ("후보 글이 비어 있습니다.", "The candidate is empty."),
    # The three {detail} messages below put an exception's programmer text (English, or Korean and English)
    # into a sentence; relay.ui.messages.error_text(lang, exc) replaces them. Kept until the story tab moves over.
    "settings_error": ("샘플링 설정 오류: {detail}", "Sampling settings error: {detail}"),
    "cannot_save": ("저장하지 못했습니다: {detail}", "Could not save: {detail}"),
    "generation_failed": ("AI 생성에 실패했습니다: {detail}", "Generation failed: {detail}"),
    "empty_output": ("AI가 아무 글도 쓰지 않았습니다. '다시 쓰기'를 누르거나 설정을 바꿔 보세요.", "The model wrote nothing. Press 'Regenerate' or change the settings."),
    "undone": ("마지막 문단을 되돌렸습니다.", "Your last paragraph was undone."),
    "forked": ("갈래 이야기 #{story}를 만들었습니다.", "Created fork, story #{story}."),
    "need_seq": ("갈래를 낼 문단 번호를 입력하세요.", "Enter the number of the paragraph to fork at."),
    "bad_seq": ("문단 번호 {seq}은(는) 이 이야기에 없습니다.", "This story has no paragraph number {seq}."),
    "added": ("문단을 추가했습니다.", "Paragraph added."),
    "accepted": ("AI 문단을 이야기에 넣었습니다.", "The AI paragraph is in the story."),
    "lab_need_context": ("맥락을 입력하세요.", "Enter a context."),
    # toasts (titles; Gradio 6.31 shows the toast's type instead, see relay/ui/messages.py)
    "toast.error": ("오류", "Error"),
    "toast.warning": ("알림", "Warning"),
    "toast.info": ("안내", "Info"),
    "someone": ("다른 작가", "another writer"),
    # errors, by store error class (err.<Class>) and, where the action changes the advice, err.<action>.<Class>
    "err.StoryError": ("저장하지 못했습니다. 잠시 뒤 다시 시도해 주세요. 쓰던 글은 그대로 있습니다.",
                       "That could not be saved. Please try again in a moment; your text is still here."),
    "err.InvalidInput": ("받아들일 수 없는 입력입니다. 글이 비어 있거나 너무 길지 않은지, 이름과 제목이 알맞은지 확인해 주세요.",
                         "That input can't be used. Check that the text is not empty or too long, and that the name and title are fine."),
    "err.NotFound": ("찾는 이야기나 문단이 없습니다. 그사이 되돌려졌거나 사라졌을 수 있습니다.",
                     "That story or paragraph is not there; it may have been undone or removed meanwhile."),
    "err.StaleHeadError": ("그사이 다른 작가가 이야기를 바꿨습니다. 새 문단을 확인한 뒤 다시 시도하세요. 쓰던 글은 그대로 있습니다.",
                           "Someone changed the story meanwhile. Read the new paragraph, then try again; your text is still here."),
    "err.StoryFull": ("이 이야기는 문단이 가득 찼습니다 (한 이야기에 5,000개까지). 마지막 문단에서 '여기서 갈래 만들기'로 새 이야기를 만들어 이어 쓰세요. 쓰던 글은 그대로 있습니다.",
                      "This story is full (a story holds at most 5,000 paragraphs). Fork it at its last paragraph to go on in a new story; your text is still here."),
    "err.TurnError": ("지금은 이야기의 차례 규칙상 할 수 없습니다. 차례 안내를 확인하세요.",
                      "The story's turn rule does not allow that right now; see whose turn it is."),
    "err.NotAllowed": ("그렇게 할 수 있는 사람이 아닙니다. 자기가 쓰거나 채택한 문단만 바꿀 수 있습니다.",
                       "You can't do that: you can only change paragraphs you wrote or accepted."),
    "err.UnknownWriterKey": ("이 브라우저의 작가 키를 이 사이트가 알지 못합니다. 페이지를 새로 고치면 새 키를 받습니다. 쓰던 글은 그대로 있습니다.",
                             "This site does not know this browser's writer key. Reload the page to get a new one; your text is still here."),
    "err.NameTaken": ("이 이야기에서 그 필명은 다른 작가가 쓰고 있습니다. 다른 필명을 입력하세요.",
                      "Another writer already uses that name in this story. Pick a different writer name."),
    "err.TurnBusy": ("지금 AI가 {holder}님을 위해 쓰고 있습니다. 끝나면 다시 시도하세요.",
                     "The model is writing for {holder} right now; try again when it is done."),
    "err.TurnBusy.pending": ("{holder}님이 받은 AI 후보가 채택을 기다리고 있습니다. 잠시 뒤 다시 시도하세요.",
                             "{holder}'s AI suggestion is waiting to be accepted; try again in a little while."),
    "err.TurnLost": ("자리를 오래 비운 사이 AI 차례가 {holder}님에게 넘어갔습니다. 후보 글을 복사해 두었다가 다음 차례에 쓰세요.",
                     "You were away too long and the model's turn went to {holder}. Copy the suggestion and use it on your next turn."),
    "err.StoreBusy": ("지금 쓰는 사람이 많아 저장하지 못했습니다. 잠시 뒤 다시 시도하세요. 쓰던 글은 그대로 있습니다.",
                      "Many people are writing right now and this was not saved. Try again in a moment; your text is still here."),
    "err.StoreUnavailable": ("이야기 저장소에 쓸 수 없습니다 (디스크가 가득 찼거나 읽기 전용입니다). 관리자에게 알려 주세요. 쓰던 글은 그대로 있습니다.",
                             "The story database can't be written to (the disk is full or read-only). Please tell the person who runs this site; your text is still here."),
    "err.undo.NotFound": ("되돌릴 문단이 없습니다.", "There is no paragraph to undo."),
    "err.undo.NotAllowed": ("마지막 문단을 내가 쓰거나 채택했을 때만 되돌릴 수 있습니다.",
                            "You can only undo the last paragraph when you wrote or accepted it."),
    "err.redo.NotFound": ("다시 할 것이 없습니다. 최근에 되돌린 내 문단이 없습니다.", "Nothing to redo: you have not undone a paragraph lately."),
    "err.redo.StaleHeadError": ("되돌린 뒤 이야기가 이어져서 그 문단을 다시 넣을 수 없습니다.",
                                "The story went on after your undo, so that paragraph can't come back."),
    "err.edit.NotAllowed": ("자기가 쓴 문단만 고칠 수 있습니다. 자유 규칙 이야기에서는 누구나 고칠 수 있습니다.",
                            "You can only edit paragraphs you wrote; on a free-rule story anyone may edit."),
    "err.edit.NotFound": ("그 번호의 문단이 없습니다. 그사이 되돌려졌을 수 있습니다.", "There is no paragraph with that number; it may have been undone."),
    "err.fork.NotFound": ("그 번호의 문단이 없습니다. 이야기에 남아 있는 문단에서 갈래를 만드세요.",
                          "There is no paragraph with that number; fork from a paragraph still in the story."),
    "err.import.InvalidInput": ("이 파일은 릴레이에서 내려받은 JSON 이야기가 아니거나 손상되었습니다.",
                                "This file is not a story exported from Relay as JSON, or it is damaged."),
    "err.accept.NotFound": ("이 후보는 더 이상 없습니다 (시간이 지났거나 버려졌습니다). AI에게 다시 써 달라고 하세요.",
                            "This suggestion is gone (it expired or was discarded). Ask the model again."),
    "err.engine": ("AI가 글을 쓰지 못했습니다. 다시 시도하거나 샘플링 설정을 바꿔 보세요.",
                   "The model could not write. Try again or change the sampling settings."),
    "err.unknown": ("뭔가 잘못되었습니다. 잠시 뒤 다시 시도해 주세요. 계속되면 관리자에게 알려 주세요.",
                    "Something went wrong. Please try again in a moment, and tell the person who runs this site if it keeps happening."),
    # settings errors: {topic} is the setting's label (with its particle in Korean)
    "err.setting.float": ("{topic} {min}~{max} 사이의 숫자여야 합니다.", "{topic} must be a number from {min} to {max}."),
    "err.setting.int": ("{topic} {min}~{max} 사이의 정수여야 합니다.", "{topic} must be a whole number from {min} to {max}."),
    "err.setting.seed": ("{topic} {min}~{max} 사이의 정수여야 합니다. 비워 두면 무작위로 정합니다.",
                         "{topic} must be a whole number from {min} to {max}, or empty for a random one."),
    "err.setting.bool": ("{topic} 켜거나 끄는 설정입니다.", "{topic} is either on or off."),
    "err.setting.choice": ("{topic} 다음 중 하나여야 합니다: {choices}.", "{topic} must be one of: {choices}."),
    "err.setting.you_typed": ("(입력한 값: {value})", "(you typed {value})"),
    "err.setting.min_over_max": ("최소 길이는 최대 길이({max}) 이하여야 합니다.", "The min length must not exceed the max length ({max})."),
    "err.setting.window": ("최대 길이가 이 모델이 한 번에 볼 수 있는 길이에 비해 너무 깁니다. {max} 이하로 줄이세요.",
                           "The max length is too long for what this model can read at once; use at most {max}."),
    "err.setting.same_alternatives": ("온도가 0이면 후보가 모두 같아집니다. 여러 개를 보려면 온도를 올리세요.",
                                      "With temperature 0 every alternative is the same; raise the temperature to get different ones."),
    "err.setting.n": ("후보 개수는 1~4 사이여야 합니다.", "The number of alternatives must be from 1 to 4."),
    "err.setting.adapter": ("그런 모델이나 어댑터가 없습니다. 목록에서 고르세요.", "There is no such model or adapter; pick one from the list."),
    "err.setting.unknown": ("샘플링 설정을 읽지 못했습니다. '이야기 기본값으로'를 눌러 되돌리세요.",
                            "The sampling settings could not be read; press 'Reset to story defaults'."),
    "setting_clamped": ("{message} 범위 안에서 가장 가까운 값으로 바꿨습니다: {typed} → {value}.",
                        "{message} Changed to the nearest allowed value: {typed} → {value}."),
}

PRESET_NAMES_FALLBACK = {"careful": ("신중하게", "Careful"), "balanced": ("균형 있게", "Balanced"), "adventurous": ("모험적으로", "Adventurous")}


def pick_lang(accept_language: str | None) -> str:
    """Choose "ko" or "en" from an Accept-Language header, matching what the browser UI shows.

    Gradio's front end shows a translation for the browser's language and falls back to English,
    so a non-Korean browser gets English there; with no header at all (API clients) we answer in Korean.
    """
    first = (accept_language or "").split(",")[0].split(";")[0].strip().lower()
    return "ko" if not first or first.startswith("ko") else "en"


def say(lang: str, key: str, **values) -> str:
    """The message `key` in `lang` ("ko" or "en"), formatted with `values`."""
    ko, en = TEXT[key]
    return (en if lang == "en" else ko).format(**values)


def translations(extra: dict[str, tuple[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Per-language dictionaries for `gr.I18n(**translations())`."""
    merged = {**TEXT, **(extra or {})}
    return {lang: {key: pair[i] for key, pair in merged.items()} for i, lang in enumerate(LANGS)}


# The live story view's strings live beside the code that shows them.
from relay.ui.story_text import STORY_TEXT  # noqa: E402

TEXT.update(STORY_TEXT)

# Steering the model (memory, author's note, story cards, what the model reads): relay/ui/steering.py.
from relay.ui.steering_text import STEERING_TEXT  # noqa: E402

TEXT.update(STEERING_TEXT)

# Who is here, taking over a waiting suggestion: relay/ui/presence_view.py.
from relay.ui.presence_text import PRESENCE_TEXT  # noqa: E402

TEXT.update(PRESENCE_TEXT)

# The token probability view and branching a suggestion at a token: relay/ui/token_view.py, relay/ui/branch.py.
from relay.ui.token_text import TOKEN_TEXT  # noqa: E402

TEXT.update(TOKEN_TEXT)

# The sampling lab's columns, measures and sweeps: relay/ui/lab_columns.py, relay/ui/lab_sweep.py.
from relay.ui.lab_text import LAB_TEXT  # noqa: E402

TEXT.update(LAB_TEXT)
