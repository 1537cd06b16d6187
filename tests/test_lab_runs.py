"""Measured lab runs and sweeps on the tiny model (relay/lab_runs.py), and the limits they count under."""

import pytest

from relay.lab_runs import LabColumn, LabRun, LabTooBig, Sweep, lab_allowance, sweep_values
from relay.lab_measures import MEASURES
from relay.limits import LimitExceeded, Limits, Rates
from relay.settings import SamplingSettings, SettingsError

STORY = ["비가 그친 저녁, 나는 오래된 우체국 앞에서 그녀를 기다렸다."]
SHORT = SamplingSettings(max_new_tokens=12, min_new_tokens=2, stop_at="length")


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from relay.engine import Engine

    engine = Engine.from_pretrained(tiny_model_dir, backend="openvino")
    yield engine
    engine.close()


def test_a_lab_run_writes_n_samples_per_column_with_distinct_seeds_and_measures_each_column(engine):
    columns = [LabColumn(SHORT, 3), LabColumn(SHORT.replace(temperature=1.5, top_k=0), 2)]
    run = LabRun(engine, STORY, columns, seed=41)
    progress = [[[s.shown for s in column] for column in samples] for samples in run]
    result = run.results()
    assert [len(c["samples"]) for c in result["columns"]] == [3, 2]
    assert [s["seed"] for s in result["columns"][0]["samples"]] == [41, 42, 43]
    assert [s["seed"] for s in result["columns"][1]["samples"]] == [41, 42]  # same seeds: only settings differ
    for column in result["columns"]:
        assert set(column["measures"]) == {m.key for m in MEASURES}
        assert all(s["text"] and s["output_tokens"] == 12 for s in column["samples"])
        assert column["measures"]["length_tokens"][0] > 0
    assert progress[-1] == [[s["text"] for s in c["samples"]] for c in result["columns"]]
    # a sample's seed and settings write the same text again on their own
    again = engine.continue_story(STORY, SHORT.replace(seed=42))
    assert again.text == result["columns"][0]["samples"][1]["text"]


def test_a_sweep_gives_rows_per_point_and_measure(engine):
    values = sweep_values("temperature", 0.5, 1.5, 3)
    assert values == [0.5, 1.0, 1.5]
    sweep = Sweep(engine, STORY, SHORT, "temperature", values, 2, seed=7)
    progress = [done for done, total, _ in sweep]
    rows = sweep.rows()
    assert progress[-1] == 6 and progress == sorted(progress)  # progress only grows
    assert [p["value"] for p in sweep.points] == [0.5, 1.0, 1.5]
    assert all(len(p["samples"]) == 2 for p in sweep.points)
    for value in values:
        assert {r["measure"] for r in rows if r["point"] == value} >= {"distinct_1", "length_tokens", "tokens_per_s"}


def test_sweep_values_are_checked_against_the_knob():
    assert sweep_values("top_k", 0, 10, 4) == [0, 3, 7, 10]
    with pytest.raises(SettingsError, match="top_p"):
        sweep_values("top_p", 0.5, 1.5, 3)
    with pytest.raises(SettingsError, match="seed"):
        sweep_values("seed", 1, 2, 2)


def test_limits_refuse_an_oversized_sweep_before_anything_runs():
    limits = Limits(Rates(lab_samples=(16, 48)))
    with pytest.raises(LabTooBig, match="20 samples is more than the 16"):
        with lab_allowance(limits, "w1", "1.2.3.4", 20):
            pytest.fail("an oversized sweep must not run")
    with lab_allowance(limits, "w1", "1.2.3.4", 12):  # a 3 x 4 lab run fits and is counted
        pass
    with pytest.raises(LimitExceeded) as caught:
        with lab_allowance(limits, "w1", "1.2.3.4", 8):  # 12 + 8 > 16 lab samples this minute
            pass
    assert caught.value.action == "lab_samples"


def test_the_api_runs_a_measured_lab_and_a_sweep_for_a_keyed_writer_and_refuses_an_oversized_sweep(engine, tmp_path):
    from relay.story_store import StoryStore
    from relay.turns import AITurn
    from relay.ui.api import api_functions

    store = StoryStore(tmp_path / "relay.db")
    fns = api_functions(engine, store, AITurn(engine, store, escape_names=False), Limits(Rates(lab_samples=(12, 48))))
    key = fns["writer_key"]()
    short = SHORT.to_dict()
    with pytest.raises(Exception, match="writer_key is required"):
        fns["lab_run"]("바람이 불었다.", [{"settings": short, "samples": 2}])
    result = fns["lab_run"]("바람이 불었다.\n\n강물이 불었다.", [{"settings": short, "samples": 2},
                                                           {"settings": {**short, "top_k": 5}, "samples": 1}],
                            seed=5, writer_key=key, with_tokens=True)
    assert [[s["seed"] for s in c["samples"]] for c in result["columns"]] == [[5, 6], [5]]
    assert result["columns"][0]["measures"]["distinct_1"] is not None and "best" in result
    assert all("token_probabilities" in s for c in result["columns"] for s in c["samples"])
    with pytest.raises(Exception, match="20 samples is more than the 12"):
        fns["lab_sweep"]("바람이 불었다.", "top_p", 0.5, 1.0, points=5, samples=4, writer_key=key)
    sweep = fns["lab_sweep"]("바람이 불었다.", "top_k", 1, 9, points=3, samples=2, settings=short, writer_key=key)
    assert [p["value"] for p in sweep["points"]] == [1, 5, 9]
    assert {r["point"] for r in sweep["rows"]} == {1, 5, 9}


def test_a_story_preset_saved_from_the_lab_is_shared_with_the_story_and_leaves_its_settings_as_they_were(tmp_path):
    from relay.store.presets import story_presets
    from relay.story_store import StoryError, StoryStore

    store = StoryStore(tmp_path / "relay.db")
    key, other = store.new_writer_key(), store.new_writer_key()
    story = store.create_story("프리셋", "민지", settings=SHORT.to_dict(), writer_key=key)
    store.save_story_preset(story.id, "차분한 밤", SHORT.replace(temperature=0.5).to_dict(), "민지", writer_key=key)
    store.save_story_preset(story.id, "차분한 밤", SHORT.replace(temperature=0.4).to_dict(), "민지", writer_key=key)
    saved = store.get_story(story.id).settings
    assert list(story_presets(saved)) == ["차분한 밤"] and story_presets(saved)["차분한 밤"]["temperature"] == 0.4
    assert SamplingSettings.of_story(saved) == SHORT  # the story's own settings still load, presets set aside
    with pytest.raises(StoryError):  # 민지's name in this story belongs to her key
        store.save_story_preset(story.id, "남의 것", SHORT.to_dict(), "민지", writer_key=other)
