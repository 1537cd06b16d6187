"""UI text of the sampling lab's columns, measures and sweeps, Korean first (merged into relay.ui_text.TEXT).
The measures' own names and explanations live with their definitions in relay/lab_measures.py."""

from relay.lab_measures import MEASURES

LAB_TEXT: dict[str, tuple[str, str]] = {
    "lab_intro2": (
        "같은 맥락에서 설정 2~4개를 나란히 돌려 봅니다. 열마다 표본 n개를 시드 s, s+1, …로 **함께** 쓰고(시드를 비우면 모든 열이 "
        "같은 시드를 씁니다), 길이·어휘 다양성·반복·모델의 자신감·잘린 비율·속도를 재서 측정마다 가장 좋은 열에 ★를 붙입니다.",
        "Run 2-4 settings side by side on one context. Each column writes n samples **together** with seeds s, s+1, … "
        "(leave the seed empty and every column uses the same seeds), then measures length, lexical diversity, "
        "repetition, the model's confidence, the share cut by the stop rule and speed, and stars the best column "
        "per measure."),
    "lab_samples": ("표본 수", "Samples"),
    "lab_adapter": ("모델", "Model"),
    "lab_base_model": ("기본 모델", "Base model"),
    "lab_knobs": ("설정 조절", "Settings"),
    "lab_stop": ("중지", "Stop"),
    "lab_pick_sample": ("표본", "Sample"),
    "lab_use_text": ("이 글을 이야기의 제안으로", "Use this text in the story"),
    "lab_use_text_done": ("설정 {n}의 표본 {k}(시드 {seed})을(를) 이야기에 모델의 제안으로 넣었습니다. 고치거나 받아들이세요.",
                          "Put setting {n}'s sample {k} (seed {seed}) into the story as the model's suggestion: edit "
                          "or accept it there."),
    "lab_no_text": ("아직 이 열에 쓴 글이 없습니다. 먼저 '함께 생성'을 누르세요.",
                    "This column has no text yet: press \"Generate all\" first."),
    "lab_preset_name": ("프리셋 이름", "Preset name"),
    "lab_save_preset": ("이야기 프리셋으로 저장", "Save as story preset"),
    "lab_preset_saved": ("'{name}' 프리셋을 이 이야기에 저장했습니다. 이야기를 쓰는 모두가 씁니다.",
                         "Saved the preset '{name}' with this story, for everyone writing it."),
    "lab_preset_need_name": ("프리셋 이름을 입력하세요 (40자까지).", "Enter a preset name (up to 40 characters)."),
    "lab_story_preset": ("이 이야기: {name}", "This story: {name}"),
    "lab_sample_head": ("#{i} · 시드 {seed}", "#{i} · seed {seed}"),
    "lab_running": ("쓰는 중…", "writing…"),
    "lab_measure": ("측정", "Measure"),
    "lab_value": ("값", "Value"),
    "lab_meaning": ("뜻", "What it means"),
    "lab_best": ("★ 가장 좋음", "★ best"),
    "lab_summary": ("표본 {n}개 · {seconds}초 · 첫 시드 {seed}", "{n} samples · {seconds} s · first seed {seed}"),
    "lab_stopped": ("중지했습니다. 쓴 데까지 잽니다.", "Stopped: measured what was written."),
    "lab_too_big": ("표본 {samples}개는 1분에 요청할 수 있는 {allowed}개보다 많습니다. 점이나 표본 수를 줄이세요.",
                    "{samples} samples is more than the {allowed} a writer may ask for in a minute: use fewer points "
                    "or samples."),
    # sweeps
    "lab_sweep_title": ("스윕: 설정 하나를 바꿔 가며 재기", "Sweep: measure one knob over a range"),
    "lab_sweep_intro": (
        "설정 1의 나머지 설정과 모델로, 고른 설정만 범위 안에서 바꿔 가며 점마다 표본을 같은 시드들로 씁니다. 측정마다 그래프를 그립니다.",
        "Uses setting 1's other settings and model, varies only the chosen knob over the range and writes the samples "
        "at every point with the same seeds, then plots each measure against the knob."),
    "lab_sweep_knob": ("바꿀 설정", "Knob"),
    "lab_sweep_from": ("부터", "From"),
    "lab_sweep_to": ("까지", "To"),
    "lab_sweep_points": ("점 수", "Points"),
    "lab_sweep_samples": ("점마다 표본", "Samples per point"),
    "lab_sweep_run": ("스윕 실행", "Run sweep"),
    "lab_sweep_measure": ("그래프에 그릴 측정", "Measure to plot"),
    "lab_sweep_progress": ("표본 {done}/{total} · {knob} = {points}", "samples {done}/{total} · {knob} = {points}"),
    "lab_sweep_done": ("끝: 표본 {total}개, {seconds}초", "Done: {total} samples in {seconds} s"),
    "lab_tokens": ("토큰 확률 보기 (고른 표본)", "Token probabilities (the picked sample)"),
    "lab_seed": ("시드", "Seed"),
    "lab_text": ("글", "Text"),
    "lab_sweep_texts": ("점마다 쓴 글", "Texts at each point"),
    "lab_sweep_point": ("{knob} = {value}", "{knob} = {value}"),
    "lab_sweep_plot": ("측정 ↔ 설정", "Measure vs knob"),
    "lab_sweep_ratios": ("0~1 비율 모두 (다양성·반복·잘림)", "Every 0-1 ratio (diversity, repetition, cut)"),
    "lab_ratio_axis": ("비율 (0~1)", "Ratio (0-1)"),
    "lab_sweep_need_range": ("범위의 시작과 끝을 입력하세요.", "Enter where the range starts and ends."),
}
# The measures' names for static labels (the plot's measure choice).
LAB_TEXT.update({f"measure.{m.key}": (m.label_ko, m.label_en) for m in MEASURES})
