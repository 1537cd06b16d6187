"""The "model is being prepared" banner: shown while the OpenVINO backend converts or compiles the model.

app.py brings the page up first and prepares the model in the background (relay/backends/openvino/progress.py
tracks it). Until it is ready, every page shows how far it is, refreshed every few seconds, and hides it once
the model is ready; the model's turns asked meanwhile wait and start by themselves. Other backends are ready at once.
"""

from __future__ import annotations

import gradio as gr

from relay.ui.common import _lang

REFRESH_S = 2.0  # how often an open page re-reads the progress, only while the model is being prepared
# The buttons that ask the model (their elem_ids, the page's stable names): pressed while it is being prepared,
# they also say so, and the turn starts by itself once the model is ready.
MODEL_BUTTONS = ("relay-ai", "relay-alts", "relay-regen", "relay-extend", "relay-lab-run")

TEXT = {
    "preparing": ("**모델을 준비하고 있습니다 ({percent}%, {stage})**: 처음 시작할 때 한 번 변환하며 1분쯤 걸립니다. 지금도 이야기를 읽고 "
                  "쓸 수 있고, AI 이어쓰기는 준비가 끝나면 바로 시작됩니다.",
                  "**The model is being prepared ({percent}%, {stage})**: it is converted once, at the first start, in about a "
                  "minute. You can read and write now; the AI's turns start as soon as it is ready."),
    "failed": ("⚠️ **모델을 준비하지 못했습니다.** AI 이어쓰기를 쓸 수 없습니다. 서버 관리자에게 알려 주세요 (서버 로그에 이유가 있습니다).",
               "⚠️ **The model could not be prepared.** The AI cannot write. Please tell the server's operator (the "
               "server's log says why)."),
    "wait": ("모델을 준비하고 있습니다 ({percent}%). 준비가 끝나면 바로 이어 씁니다.",
             "The model is being prepared ({percent}%). It writes as soon as it is ready."),
}
STAGES = {  # what the stage `Preparation.stage` names is doing, for the banner
    "check": ("캐시 확인 중", "checking the cache"), "cached": ("캐시에서 찾음", "found in the cache"),
    "convert": ("OpenVINO로 변환 중", "converting to OpenVINO"), "compress": ("가중치 압축 중", "compressing the weights"),
    "save": ("캐시에 저장 중", "saving to the cache"),
    "unpack": ("읽기용 가중치 푸는 중", "unpacking the weights for reading"),
    "compile": ("CPU용 컴파일 중", "compiling for the CPU"),
}
LOADING = ("불러오는 중", "loading")


def preparation_of(engine):
    """The backend's preparation progress while it is not ready; None once ready (or for backends that need none)."""
    preparation = getattr(getattr(engine, "backend", None), "preparation", None)
    if preparation is None or preparation.ready:
        return None
    return preparation


def preparing_text(preparation, lang: str) -> str:
    """The banner's text in `lang` for a `preparation_of(engine)` ("" when the model is ready)."""
    if preparation is None:
        return ""
    index = 0 if lang == "ko" else 1
    if preparation.error:
        return TEXT["failed"][index]
    stage = STAGES.get(preparation.stage, LOADING)[index]
    return TEXT["preparing"][index].format(percent=preparation.percent, stage=stage)


def build_preparing_banner(demo: gr.Blocks, engine, private: dict) -> gr.Markdown:
    """The banner and its refresh: on page load, then every REFRESH_S while the model is being prepared."""
    banner = gr.Markdown(visible=False, elem_id="relay-preparing")
    timer = gr.Timer(REFRESH_S, active=False)

    def show(request: gr.Request):
        preparation = preparation_of(engine)  # read once: it may become ready meanwhile
        text = preparing_text(preparation, _lang(request))
        waiting = preparation is not None and preparation.error is None
        return gr.Markdown(text, visible=bool(text)), gr.Timer(active=waiting)

    demo.load(show, None, [banner, timer], show_progress="hidden", **private)
    timer.tick(show, None, [banner, timer], show_progress="hidden", **private)
    return banner


def note_model_buttons(demo: gr.Blocks, engine, private: dict) -> None:
    """Pressing a button that asks the model while it is being prepared also shows a note saying so.

    Call inside `demo` after its tabs are built; the buttons' own handlers run as usual (their turn waits)."""
    def note(request: gr.Request):
        preparation = preparation_of(engine)
        if preparation is not None and preparation.error is None:
            index = 0 if _lang(request) == "ko" else 1
            gr.Info(TEXT["wait"][index].format(percent=preparation.percent))

    for block in list(demo.blocks.values()):
        if isinstance(block, gr.Button) and block.elem_id in MODEL_BUTTONS:
            block.click(note, None, None, show_progress="hidden", **private)
