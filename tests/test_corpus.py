"""Corpus builder: Wikisource parsing, public-domain filtering, de-duplication, by-work split, local and HF sources.

Wikisource is replayed from JSON fixtures in the API's real response shapes (tests/fixtures/wikisource,
invented text) through an injected session: no sockets, no sleeping.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests

from data.build_corpus import CorpusOptions, build_corpus
from data.build_corpus import main as build_main
from data.corpus import Document, dedupe, split_by_work
from data.errors import ApiError, CorpusError, FetchError, SourceError
from data.local import read_hf_dataset, read_local
from data.wikisource import MediaWikiClient, collect_wikisource, death_year_from_page, fetch_pages
from data.wikitext import strip_wikitext

FIXTURES = Path(__file__).parent / "fixtures" / "wikisource"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class FakeResponse:
    def __init__(self, payload=None, status_code=200, headers=None, text=None):
        self.status_code = status_code
        self.headers = headers or {}
        self._payload = payload
        self._text = text

    def json(self):
        if self._payload is None:
            raise ValueError("Expecting value: line 1 column 1 (char 0)")
        return self._payload


class FakeWiki:
    """A session answering like ko.wikisource.org and wikidata.org from the fixture files."""

    def __init__(self):
        self.calls: list[tuple[str, dict, dict]] = []
        self.pages = {p["title"]: p for p in fixture("pages.json")["query"]["pages"]}

    def get(self, url, params=None, headers=None, timeout=None):
        self.calls.append((url, dict(params), dict(headers)))
        if params.get("action") == "wbgetentities":
            return FakeResponse(fixture(f"wikidata-{params['ids']}.json"))
        if params.get("list") == "categorymembers":
            return FakeResponse(fixture("categorymembers-2.json" if "cmcontinue" in params else "categorymembers-1.json"))
        if "revisions" in params.get("prop", ""):
            titles = params["titles"].split("|")
            pages = [self.pages.get(t, {"ns": 0, "title": t, "missing": True}) for t in titles]
            return FakeResponse({"batchcomplete": True, "query": {"pages": pages}})
        return FakeResponse(fixture("error-badvalue.json"))


class Scripted:
    """A session that plays back a list of responses or exceptions, one per request."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def get(self, url, params=None, headers=None, timeout=None):
        self.calls.append((url, dict(params), dict(headers)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def wiki_clients(session):
    sleeps: list[float] = []
    client = MediaWikiClient(session=session, sleep=sleeps.append)
    wikidata = MediaWikiClient(api_url="https://www.wikidata.org/w/api.php", session=session, sleep=sleeps.append)
    return client, wikidata, sleeps


# ------------------------------------------------------------------ wikitext


def test_markup_is_stripped_to_clean_paragraphs():
    page = fixture("pages.json")["query"]["pages"]
    lucky = next(p for p in page if p["title"] == "운수 좋은 날")["revisions"][0]["slots"]["main"]["content"]
    paragraphs = strip_wikitext(lucky)
    assert paragraphs == [
        "새침하게 흐린 겨울 하늘 아래 인력거꾼 김 첨지는 동소문 안에서 오래 손님을 기다렸다. 바람이 불 때마다 그는 낡은 모자를 눌러 썼다.",
        "오늘은 이상하게도 손님이 끊이지 않았다. 첫 번째 손님을 태우고 나서 그는 괜스레 웃음이 나왔다. "
        "그러나 집에 누운 아내의 기침 소리가 자꾸만 귓가에 맴돌았다.",
        "― 끝 ―",
    ]


@pytest.mark.parametrize(
    "wikitext, expected",
    [
        ("[[저자:현진건|현진건]]의 [[빈처]]를 읽었다.", ["현진건의 빈처를 읽었다."]),
        ("본문<ref name=\"a\">각주</ref>과 <ref name=\"a\"/>끝.", ["본문과 끝."]),
        ("{{틀|{{안쪽 틀|인자}}|x=1}}남은 글.", ["남은 글."]),
        ("<poem>\n첫 줄\n둘째 줄\n</poem>", ["첫 줄", "둘째 줄"]),
        ("[[파일:그림.jpg|thumb|설명 [[링크]]]]글.", ["글."]),
        ("첫 줄<br/>둘째 줄&nbsp;끝", ["첫 줄 둘째 줄 끝"]),
        ("[https://example.org 바깥 링크] 와 https://example.org/x 주소", ["바깥 링크 와 주소"]),
    ],
)
def test_wikitext_constructs_become_plain_text(wikitext, expected):
    assert strip_wikitext(wikitext) == expected


@pytest.mark.parametrize(
    "wikitext, expected",
    [
        pytest.param(
            "앞 글 {{머리말|제목={{크게|운수}}|저자=[[저자:현진건|현진건]]|설명={{작게|{{가운데|x}}}}}} 뒷 글.",
            ["앞 글 뒷 글."],
            id="nested-templates",
        ),
        pytest.param("{{틀:가운데|― 끝 ―}}", ["― 끝 ―"], id="text-template-with-namespace"),
        pytest.param(
            '본문<ref name="주/1" />은 <ref group="주">{{cite|제목=책|쪽=3}}</ref>이어진다.<ref name="b" />',
            ["본문은 이어진다."],
            id="refs-self-closing-and-with-templates",
        ),
        pytest.param(
            '앞 문단.\n\n{| class="wikitable"\n! 차례\n|-\n| [[/1장|첫째 장]] {{작게|}}\n|-\n|\n{|\n| 안쪽 표\n|}\n|}\n'
            "뒷 문단.\n\n<table><tr><td>HTML 표</td></tr></table>",
            ["앞 문단.", "뒷 문단."],
            id="tables",
        ),
        pytest.param(
            "<poem style=\"margin-left:2em\">\n:'''첫''' 줄\n{{가운데|둘째 줄}}\n\n셋째 줄<ref>주석</ref>\n</poem>뒤 글.",
            ["첫 줄", "둘째 줄", "셋째 줄", "뒤 글."],
            id="poem",
        ),
        pytest.param(
            "[[w:현진건|현진건]]의 [[운수 좋은 날|소설]]과 [[빈처#一|빈처]], [[/1장]].[[en:A Lucky Day]][[ja:運のよい日]]",
            ["현진건의 소설과 빈처, 1장."],
            id="links-interwiki-kept-interlanguage-dropped",
        ),
        pytest.param(
            "[[File:Lucky.jpg|thumb|200px|김 첨지의 [[인력거]]]]그는 달렸다.[[분류:단편소설]][[Category:1924 works|정렬]]\n[[그림:a.png]]",
            ["그는 달렸다."],
            id="files-and-categories",
        ),
        pytest.param(
            "'''김 첨지'''는 ''문득'' ''''혼잣말''''을 했다.",
            ["김 첨지는 문득 '혼잣말'을 했다."],
            id="bold-italic-and-a-quote-inside-bold",
        ),
        pytest.param(
            "본문<!-- 편집자 주: {{틀|[[링크]]}} -->이 이어진다.\n<!--\n여러 줄\n\n주석\n-->\n다음 줄.",
            ["본문이 이어진다. 다음 줄."],
            id="comments-a-comment-line-is-no-paragraph-break",
        ),
    ],
)
def test_wikitext_is_parsed_not_pattern_matched(wikitext, expected):
    assert strip_wikitext(wikitext) == expected


def test_a_broken_template_does_not_swallow_the_rest_of_the_page():
    paragraphs = strip_wikitext("첫 문단.\n\n{{가운데|제목}\n\n본문은 남는다.")
    assert paragraphs[0] == "첫 문단."
    assert paragraphs[-1] == "본문은 남는다."


# ------------------------------------------------------------------ death years


def test_death_year_is_read_from_template_fields_and_categories():
    pages = fetch_pages(MediaWikiClient(session=FakeWiki(), sleep=lambda s: None), ["저자:현진건", "저자:김동인", "저자:나도향", "저자:무명씨"])
    assert death_year_from_page(pages["저자:현진건"]) == 1943  # |사망 = 1943년 4월 25일
    assert death_year_from_page(pages["저자:김동인"]) == 1951  # 분류:1951년 죽음 from prop=categories
    assert death_year_from_page(pages["저자:나도향"]) == 1926  # |사망년도=1926
    assert death_year_from_page(pages["저자:무명씨"]) is None


def test_only_authors_dead_by_1962_are_collected():
    session = FakeWiki()
    client, wikidata, _ = wiki_clients(session)
    result = collect_wikisource(client, categories=["분류:한국의 소설가"], wikidata=wikidata, min_chars=100)
    by_title = {d.title: d for d in result.documents}
    assert set(by_title) == {"운수 좋은 날", "빈처 (현진건)", "술 권하는 사회", "감자 (김동인)", "날개 (이상)", "빈 들판"}
    assert {d.author: d.death_year for d in result.documents} == {"현진건": 1943, "김동인": 1951, "이상": 1937, "나도향": 1926}
    reasons = {s.title: s.reason for s in result.skipped}
    assert "1963" in reasons["저자:염상섭"]  # died March 1963: one year too late
    assert "death year not found" in reasons["저자:무명씨"]
    assert "does not exist" in reasons["없는 작품"]
    requested = " ".join(call[1].get("titles", "") for call in session.calls)
    assert "삼대" not in requested and "작자 미상 이야기" not in requested  # never fetched works of excluded authors
    assert unquote(by_title["운수 좋은 날"].source_url) == "https://ko.wikisource.org/wiki/운수_좋은_날"
    assert "1943" in by_title["운수 좋은 날"].license


def test_works_split_into_subpages_are_joined_in_order():
    client, wikidata, _ = wiki_clients(FakeWiki())
    result = collect_wikisource(client, authors=["김동인"], wikidata=wikidata, min_chars=100)
    (potato,) = result.documents
    assert potato.text.startswith("복녀는 가난하였지만")
    assert potato.paragraphs[-3:] == ["가을바람 서늘한 밤", "감자밭 고랑마다", "달빛이 내려앉았다"]
    assert "첫째 장" not in potato.text  # the table of contents is not text


def test_category_listing_follows_continuation():
    session = FakeWiki()
    client, wikidata, _ = wiki_clients(session)
    collect_wikisource(client, categories=["한국의 소설가"], wikidata=wikidata)
    listing = [params for _, params, _ in session.calls if params.get("list") == "categorymembers"]
    assert len(listing) == 2
    assert listing[0]["cmtitle"] == "분류:한국의 소설가"
    assert listing[1]["cmcontinue"] == "page|c0b4ec8c|104" and listing[1]["continue"] == "-||"


# ------------------------------------------------------------------ network behaviour


def test_requests_identify_the_project_and_ask_for_maxlag():
    session = FakeWiki()
    client, _, _ = wiki_clients(session)
    fetch_pages(client, ["저자:현진건"])
    url, params, headers = session.calls[0]
    assert url == "https://ko.wikisource.org/w/api.php"
    assert "Relay" in headers["User-Agent"] and "contact" in headers["User-Agent"]
    assert params["maxlag"] == "5" and params["format"] == "json" and params["formatversion"] == "2"


def test_server_errors_are_retried_with_exponential_backoff():
    ok = FakeResponse({"batchcomplete": True, "query": {"pages": []}})
    session = Scripted(FakeResponse(status_code=503), FakeResponse(status_code=502), requests.ConnectionError("reset"), ok)
    sleeps = []
    client = MediaWikiClient(session=session, sleep=sleeps.append, backoff=1.0)
    assert client.get({"action": "query"}) == ok.json()
    assert sleeps == [1.0, 2.0, 4.0]


def test_rate_limits_and_maxlag_wait_as_long_as_the_server_asks():
    ok = FakeResponse({"query": {}})
    session = Scripted(FakeResponse(status_code=429, headers={"Retry-After": "30"}), FakeResponse(fixture("error-maxlag.json")), ok)
    sleeps = []
    client = MediaWikiClient(session=session, sleep=sleeps.append, backoff=1.0)
    client.get({"action": "query"})
    assert sleeps == [30.0, 7.0]  # Retry-After, then the reported lag (more than the 2 s backoff)


def test_giving_up_names_the_url_and_the_last_failure():
    session = Scripted(*[FakeResponse(status_code=503)] * 3)
    client = MediaWikiClient(session=session, sleep=lambda s: None, max_retries=2)
    with pytest.raises(FetchError) as error:
        client.get({"action": "query", "titles": "저자:현진건"})
    message = str(error.value)
    assert "https://ko.wikisource.org/w/api.php?" in message and "titles=" in message
    assert "3 attempts" in message and "HTTP 503" in message
    assert len(session.calls) == 3


def test_client_errors_and_api_errors_are_not_retried():
    sleeps = []
    client = MediaWikiClient(session=Scripted(FakeResponse(status_code=404)), sleep=sleeps.append)
    with pytest.raises(FetchError, match="HTTP 404"):
        client.get({"action": "query"})
    client = MediaWikiClient(session=Scripted(FakeResponse(fixture("error-badvalue.json"))), sleep=sleeps.append)
    with pytest.raises(ApiError, match="badvalue.*nosuchlist"):
        client.get({"action": "query", "list": "nosuchlist"})
    client = MediaWikiClient(session=Scripted(FakeResponse(text="<html>")), sleep=sleeps.append)
    with pytest.raises(FetchError, match="not JSON"):
        client.get({"action": "query"})
    assert sleeps == []


# ------------------------------------------------------------------ dedupe and split


def doc(title, text, author="작가"):
    return Document(title=title, author=author, text=text)


LONG_A = "그는 오래된 우체국 앞에서 해가 질 때까지 편지를 기다리며 서성거렸다."
LONG_B = "강 건너 마을에서는 밤새 개 짖는 소리가 그치지 않았고 아무도 잠들지 못했다."
LONG_C = "할머니는 부엌 아궁이에 장작을 넣으며 옛날 이야기를 하나씩 꺼내 놓으셨다."


def test_duplicate_works_and_repeated_paragraphs_are_removed():
    docs = [
        doc("원본", "\n".join([LONG_A, "네.", LONG_B])),
        doc("다른 제목의 같은 글", "\n".join([LONG_A.replace(" ", "  "), "네!", LONG_B + "!"])),
        doc("다른 판본", "\n".join([LONG_A, LONG_B, "짧다."])),
        doc("새 작품", "\n".join([LONG_C, "네.", LONG_A])),
    ]
    kept, report = dedupe(docs, min_paragraph_chars=20)
    assert [d.title for d in kept] == ["원본", "새 작품"]
    assert report.duplicate_works == ["다른 제목의 같은 글", "다른 판본"]
    assert kept[1].paragraphs == [LONG_C, "네."]  # the repeated long paragraph went, the short reply stayed
    assert report.duplicate_paragraphs == 1


def test_split_is_by_whole_work_and_deterministic():
    docs = [doc(f"작품 {i}", f"{i}번째 작품의 첫 문단.\n{i}번째 작품의 둘째 문단.", author=f"작가 {i % 7}") for i in range(200)]
    train, valid = split_by_work(docs, valid_fraction=0.1, seed=3)
    assert len(train) + len(valid) == 200 and 8 <= len(valid) <= 35
    assert not {d.title for d in train} & {d.title for d in valid}
    again_train, again_valid = split_by_work(list(reversed(docs)), valid_fraction=0.1, seed=3)
    assert {d.title for d in again_valid} == {d.title for d in valid}
    _, other_valid = split_by_work(docs, valid_fraction=0.1, seed=4)
    assert {d.title for d in other_valid} != {d.title for d in valid}
    # Adding works never moves an existing one to the other side.
    _, grown_valid = split_by_work(docs + [doc("새 작품", "새 글.")], valid_fraction=0.1, seed=3)
    assert {d.title for d in valid} <= {d.title for d in grown_valid}


def test_a_small_corpus_still_gets_one_validation_work():
    train, valid = split_by_work([doc("하나", "가."), doc("둘", "나.")], valid_fraction=0.01)
    assert len(train) == 1 and len(valid) == 1


# ------------------------------------------------------------------ end to end


def test_build_writes_train_valid_and_manifest_from_wikisource(tmp_path):
    client, wikidata, _ = wiki_clients(FakeWiki())
    options = CorpusOptions(out=str(tmp_path), wikisource_category=["분류:한국의 소설가"], min_work_chars=100, valid_fraction=0.3)
    result = build_corpus(options, client=client, wikidata_client=wikidata)
    assert result["duplicate_works"] == ["술 권하는 사회"]  # another edition of 빈처
    rows = [json.loads(line) for name in ("train", "valid") for line in (tmp_path / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["title"] for r in rows} == {"운수 좋은 날", "빈처 (현진건)", "감자 (김동인)", "날개 (이상)", "빈 들판"}
    assert all("{{" not in r["text"] and "[[" not in r["text"] and "<" not in r["text"] for r in rows)
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    entries = {e["title"]: e for e in manifest["documents"]}
    assert entries["날개 (이상)"]["death_year"] == 1937
    assert entries["빈 들판"]["author"] == "나도향"
    assert {e["split"] for e in entries.values()} == {"train", "valid"}
    by_title = {r["title"]: r for r in rows}
    assert all(entries[t]["characters"] == len(by_title[t]["text"]) for t in entries)
    header = (tmp_path / "manifest.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
    assert header[:6] == ["title", "author", "death_year", "source_url", "license", "characters"]


def test_local_folder_uses_index_titles_and_one_document_per_file(tmp_path):
    folder = tmp_path / "novels"
    folder.mkdir()
    (folder / "a.txt").write_text("첫 문장이다.\n\n둘째 문장이다.\n", encoding="utf-8")
    (folder / "b.txt").write_text("다른 작품의 문장.\n", encoding="utf-8")
    (folder / "INDEX.tsv").write_text("file\ttitle\tauthor\na.txt\t첫 작품\t김작가\n", encoding="utf-8")
    (folder / "more.jsonl").write_text(json.dumps({"text": "줄 하나\n줄 둘", "title": "제이슨", "death_year": 1990}, ensure_ascii=False) + "\n", encoding="utf-8")
    docs = {d.title: d for d in read_local(folder)}
    assert docs["첫 작품"].author == "김작가" and docs["첫 작품"].paragraphs == ["첫 문장이다.", "둘째 문장이다."]
    assert docs["b"].author is None
    assert docs["제이슨"].death_year == 1990
    out = tmp_path / "out"
    assert build_main(["--local", str(folder), "--out", str(out)]) == 0
    titles = [json.loads(line)["title"] for name in ("train", "valid") for line in (out / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(titles) == ["b", "첫 작품"]  # 제이슨's author died in 1990


def test_cli_reports_a_missing_source_clearly(tmp_path, capsys):
    assert build_main(["--out", str(tmp_path)]) == 1
    assert "no source given" in capsys.readouterr().err
    with pytest.raises(SourceError, match="does not exist"):
        read_local(tmp_path / "nowhere")
    with pytest.raises(CorpusError):
        build_corpus(CorpusOptions(out=str(tmp_path), local=[str(tmp_path / "nowhere")]))


def test_hugging_face_datasets_load_through_load_dataset_and_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"id": ["1", "2"], "url": ["https://ko.wikisource.org/wiki/가", "https://ko.wikisource.org/wiki/나"],
            "title": ["가", "나"], "text": ["가 작품의 첫 줄.\n\n가 작품의 둘째 줄.", "나 작품."]}
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict(rows).save_to_disk(str(saved))
    docs = read_hf_dataset(str(saved))
    assert [d.title for d in docs] == ["가", "나"] and docs[0].paragraphs == ["가 작품의 첫 줄.", "가 작품의 둘째 줄."]
    assert docs[0].source_url == "https://ko.wikisource.org/wiki/가"
    json_file = tmp_path / "rows.jsonl"
    json_file.write_text("".join(json.dumps({k: v[i] for k, v in rows.items()}, ensure_ascii=False) + "\n" for i in range(2)), encoding="utf-8")
    docs = read_hf_dataset("json", data_files=str(json_file), limit=1)
    assert [d.title for d in docs] == ["가"]
    with pytest.raises(SourceError, match="no column 'body'"):
        read_hf_dataset(str(saved), text_field="body")
