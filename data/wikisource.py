"""Collect public-domain Korean fiction from Korean Wikisource through the MediaWiki API.

Path through the wiki: author pages (`저자:이름`, given directly or found in categories) →
the works they link to (main namespace) → each work's wikitext, plus its subpages when the
work page is a table of contents (`[[/1장]]`, `[[제목/1장]]`) → clean paragraphs.

An author is kept only when a death year can be read and it is at most `max_death_year`
(default 1962: in Korea, works of authors who died by the end of 1962 are in the public
domain). Where the death year is read from, in order:
1. the author page's header template fields (`사망`, `사망년`, `사망연도`, `몰년`, `deathyear`, ...);
2. the page's categories, from the wikitext or the API's `prop=categories`
   (`분류:1943년 죽음`, `분류:1943년 사망`);
3. Wikidata (P570, date of death) via the page's `wikibase_item`, when a Wikidata client is given.
Authors whose death year cannot be found are skipped and reported, never assumed public domain.

All HTTP goes through `MediaWikiClient`, whose `session` (anything with requests' `get`) and
`sleep` are injectable, so tests replay fixtures in the API's shapes without sockets or waiting.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote, urlencode

from data.corpus import Document
from data.errors import ApiError, FetchError
from data.wikitext import first_year, iter_templates, strip_wikitext, wiki_links

log = logging.getLogger(__name__)

KO_WIKISOURCE_API = "https://ko.wikisource.org/w/api.php"
WIKIDATA_API = "https://www.wikidata.org/w/api.php"
DEFAULT_USER_AGENT = "RelayNovelCorpusBuilder/0.1 (Relay 릴레이 소설 corpus builder; contact: relay-maintainers@example.org)"
AUTHOR_PREFIX = "저자:"
LICENSE = "Public domain in Korea (author died in or before {year}); Wikisource page text"

# Template fields that hold an author's death date, as used by ko/en Wikisource author headers.
DEATH_FIELDS = ("사망", "사망년", "사망연도", "사망년도", "사망일", "몰년", "죽은 해", "죽은해", "deathyear", "death_year", "death")
# Fields of a work's header template that name its author.
WORK_AUTHOR_FIELDS = ("저자", "지은이", "작가", "author")
_DEATH_CATEGORY = re.compile(r"(\d{3,4})년\s*(?:죽음|사망|몰)")
# Namespaces a work list can link to that are not works.
_NON_WORK_PREFIXES = {"저자", "분류", "위키문헌", "틀", "파일", "그림", "포털", "사용자", "도움말", "특수", "미디어위키", "위키백과", "번역"}
_RETRY_STATUS = {429, 500, 502, 503, 504}


@dataclass
class MediaWikiClient:
    """A polite MediaWiki API client: descriptive User-Agent, maxlag, retries with exponential backoff."""

    api_url: str = KO_WIKISOURCE_API
    session: Any = None  # requests.Session or a fake with .get(url, params=, headers=, timeout=)
    sleep: Callable[[float], None] = time.sleep
    user_agent: str = DEFAULT_USER_AGENT
    max_retries: int = 5  # attempts after the first one
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    max_backoff: float = 60.0
    maxlag: int | None = 5  # ask the server to refuse us while its replicas lag (polite for bots)
    timeout: float = 30.0

    def __post_init__(self):
        if self.session is None:
            import requests

            self.session = requests.Session()

    def _url(self, params: dict) -> str:
        return f"{self.api_url}?{urlencode(params)}"

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.backoff * (2**attempt), self.max_backoff)
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), self.max_backoff))
            except ValueError:
                pass  # an HTTP-date Retry-After: fall back to our own backoff
        return delay

    def get(self, params: dict) -> dict:
        """One API call (JSON, formatversion 2), retried on 429/5xx/maxlag/connection errors."""
        import requests

        params = {"format": "json", "formatversion": "2", **params}
        if self.maxlag is not None:
            params.setdefault("maxlag", str(self.maxlag))
        url = self._url(params)
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        problem = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                response = self.session.get(self.api_url, params=params, headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                status = response.status_code
                retry_after = (response.headers or {}).get("Retry-After")
                if status in _RETRY_STATUS:
                    problem = f"HTTP {status}"
                elif status >= 400:
                    raise FetchError(f"GET {url} failed: HTTP {status} (not retried: a client error)")
                else:
                    try:
                        payload = response.json()
                    except ValueError as exc:
                        raise FetchError(f"GET {url} answered HTTP {status} but not JSON: {exc}") from exc
                    error = payload.get("error") if isinstance(payload, dict) else None
                    if not error:
                        return payload
                    code, info = error.get("code", "?"), error.get("info", "")
                    if code != "maxlag":
                        raise ApiError(f"GET {url}: the API answered error '{code}': {info}")
                    problem = f"server lagged (maxlag): {info}"
                    retry_after = retry_after or str(error.get("lag", "")) or None
            if attempt < self.max_retries:
                delay = self._wait(attempt, retry_after)
                log.warning("%s for %s; retry %d/%d in %.1fs", problem, url, attempt + 1, self.max_retries, delay)
                self.sleep(delay)
        raise FetchError(f"GET {url} failed after {self.max_retries + 1} attempts: {problem}")

    def query(self, params: dict) -> Iterator[dict]:
        """Yield the `query` part of each response, following `continue` until the result is complete."""
        params = {"action": "query", **params}
        cont: dict = {}
        while True:
            payload = self.get({**params, **cont})
            yield payload.get("query", {})
            if "continue" not in payload:
                return
            cont = payload["continue"]


@dataclass
class WikiPage:
    """A page's text and metadata as the API returned it."""

    title: str
    wikitext: str | None  # None when the page does not exist
    categories: list[str] = field(default_factory=list)
    wikibase_item: str | None = None


def page_url(title: str, api_url: str = KO_WIKISOURCE_API) -> str:
    """The human-readable URL of a page on the wiki behind `api_url`."""
    base = api_url.rsplit("/w/api.php", 1)[0]
    return f"{base}/wiki/{quote(title.replace(' ', '_'), safe='/:')}"


def fetch_pages(client: MediaWikiClient, titles: Iterable[str], batch_size: int = 50) -> dict[str, WikiPage]:
    """Fetch wikitext, categories and Wikidata id of `titles` (batched), keyed by the requested title."""
    titles = list(dict.fromkeys(titles))
    pages: dict[str, WikiPage] = {}
    for start in range(0, len(titles), batch_size):
        batch = titles[start : start + batch_size]
        aliases: dict[str, str] = {}  # final title -> requested title
        found: dict[str, WikiPage] = {}
        params = {
            "prop": "revisions|categories|pageprops",
            "rvprop": "content",
            "rvslots": "main",
            "cllimit": "max",
            "ppprop": "wikibase_item",
            "redirects": "1",
            "titles": "|".join(batch),
        }
        for query in client.query(params):
            for hop in query.get("normalized", []) + query.get("redirects", []):
                aliases[hop["to"]] = aliases.get(hop["from"], hop["from"])
            for raw in query.get("pages", []):
                page = found.setdefault(raw["title"], WikiPage(raw["title"], None))
                if raw.get("missing") or raw.get("invalid"):
                    continue
                for revision in raw.get("revisions", []):
                    slot = revision.get("slots", {}).get("main", revision)
                    page.wikitext = slot.get("content", page.wikitext)
                page.categories += [c["title"] for c in raw.get("categories", [])]
                page.wikibase_item = raw.get("pageprops", {}).get("wikibase_item", page.wikibase_item)
        for title, page in found.items():
            pages[aliases.get(title, title)] = page
    return pages


def category_members(client: MediaWikiClient, category: str) -> list[str]:
    """Titles of all pages in `category` (e.g. '분류:한국의 소설가'), following continuation."""
    if not category.startswith(("분류:", "Category:")):
        category = "분류:" + category
    titles = []
    for query in client.query({"list": "categorymembers", "cmtitle": category, "cmlimit": "max", "cmtype": "page"}):
        titles += [m["title"] for m in query.get("categorymembers", [])]
    return titles


def death_year_from_page(page: WikiPage) -> int | None:
    """An author's death year from their page's header template fields or death-year categories."""
    for _name, _positional, named in iter_templates(page.wikitext or ""):
        lowered = {k.lower(): v for k, v in named.items()}
        for key in DEATH_FIELDS:
            year = first_year(lowered.get(key, ""))
            if year is not None:
                return year
    categories = page.categories + [t for t in wiki_links(page.wikitext or "") if t.startswith(("분류:", "Category:"))]
    for category in categories:
        match = _DEATH_CATEGORY.search(category)
        if match:
            return int(match.group(1))
    return None


def wikidata_death_year(client: MediaWikiClient, item: str) -> int | None:
    """Death year (P570) of Wikidata item `item` such as 'Q12345', or None when it has none."""
    payload = client.get({"action": "wbgetentities", "ids": item, "props": "claims"})
    entity = payload.get("entities", {}).get(item, {})
    for claim in entity.get("claims", {}).get("P570", []):
        value = claim.get("mainsnak", {}).get("datavalue", {}).get("value", {})
        year = first_year(str(value.get("time", "")).lstrip("+"))
        if year is not None:
            return year
    return None


def author_name(title: str) -> str:
    """'저자:현진건' -> '현진건'."""
    return title.split(":", 1)[1] if title.startswith(AUTHOR_PREFIX) else title


def work_titles(author_page: WikiPage) -> list[str]:
    """Main-namespace pages an author page links to: the candidate works, in page order."""
    titles = []
    for target in wiki_links(author_page.wikitext or ""):
        prefix = target.split(":", 1)[0] if ":" in target else ""
        if prefix in _NON_WORK_PREFIXES or (prefix and prefix.isascii()):
            continue
        if target.startswith("/"):
            target = author_page.title + target
        titles.append(target)
    return list(dict.fromkeys(titles))


def subpage_titles(work: WikiPage) -> list[str]:
    """Subpages a work page links to as its chapters (`[[/1장]]` or `[[제목/1장]]`), in order."""
    chapters = []
    for target in wiki_links(work.wikitext or ""):
        if target.startswith("/"):
            chapters.append(work.title + target.rstrip("/"))
        elif target.startswith(work.title + "/"):
            chapters.append(target)
    return list(dict.fromkeys(chapters))


def work_author(page: WikiPage) -> str | None:
    """The `저자:` page a work's header template names as its author, if any."""
    for _name, _positional, named in iter_templates(page.wikitext or ""):
        for key in WORK_AUTHOR_FIELDS:
            value = named.get(key, "")
            for target in wiki_links(value):
                if target.startswith(AUTHOR_PREFIX):
                    return target
            if value and "[[" not in value and "{{" not in value:
                return AUTHOR_PREFIX + value.strip()
    return None


@dataclass
class Skipped:
    """A page left out of the corpus and why."""

    title: str
    reason: str


@dataclass
class WikisourceResult:
    """Documents collected from Wikisource and the pages left out, with reasons."""

    documents: list[Document]
    skipped: list[Skipped]


def collect_wikisource(
    client: MediaWikiClient,
    *,
    authors: Iterable[str] = (),
    categories: Iterable[str] = (),
    max_death_year: int = 1962,
    wikidata: MediaWikiClient | None = None,
    batch_size: int = 50,
    max_works: int | None = None,
    min_chars: int = 200,
) -> WikisourceResult:
    """Collect the works of public-domain authors from `authors` and the pages in `categories`.

    Category members that are author pages add their works; other members are works whose
    header names their author. Works shorter than `min_chars` after cleaning are skipped
    (lists, stubs, disambiguation pages).
    """
    skipped: list[Skipped] = []
    author_titles = [a if a.startswith(AUTHOR_PREFIX) else AUTHOR_PREFIX + a for a in authors]
    direct_works: list[str] = []
    for category in categories:
        for title in category_members(client, category):
            (author_titles if title.startswith(AUTHOR_PREFIX) else direct_works).append(title)

    direct_pages = fetch_pages(client, direct_works, batch_size) if direct_works else {}
    work_owner: dict[str, str] = {}
    for title, page in direct_pages.items():
        owner = work_author(page)
        if owner is None:
            skipped.append(Skipped(title, "no author named in the work's header"))
            continue
        work_owner[title] = owner
        author_titles.append(owner)

    author_pages = fetch_pages(client, author_titles, batch_size)
    death_years: dict[str, int] = {}
    for title in dict.fromkeys(author_titles):
        page = author_pages.get(title)
        if page is None or page.wikitext is None:
            skipped.append(Skipped(title, "author page does not exist"))
            continue
        year = death_year_from_page(page)
        if year is None and wikidata is not None and page.wikibase_item:
            year = wikidata_death_year(wikidata, page.wikibase_item)
        if year is None:
            skipped.append(Skipped(title, "death year not found on the author page; not assumed public domain"))
        elif year > max_death_year:
            skipped.append(Skipped(title, f"author died in {year}, after {max_death_year}: still under copyright"))
        else:
            death_years[title] = year
            for work in work_titles(page):
                work_owner.setdefault(work, title)

    wanted = [w for w, owner in work_owner.items() if owner in death_years]
    if max_works is not None:
        wanted = wanted[:max_works]
    pages = {t: p for t, p in direct_pages.items() if t in wanted}
    pages.update(fetch_pages(client, [w for w in wanted if w not in pages], batch_size))
    chapter_lists = {t: subpage_titles(p) for t, p in pages.items() if p.wikitext}
    chapter_pages = fetch_pages(client, [c for cs in chapter_lists.values() for c in cs], batch_size)

    documents = []
    for title in wanted:
        page = pages.get(title)
        if page is None or page.wikitext is None:
            skipped.append(Skipped(title, "work page does not exist"))
            continue
        chapters = chapter_lists.get(title) or []
        texts = [chapter_pages[c].wikitext for c in chapters if c in chapter_pages and chapter_pages[c].wikitext]
        paragraphs = [p for text in (texts or [page.wikitext]) for p in strip_wikitext(text)]
        text = "\n".join(paragraphs)
        if len(text) < min_chars:
            skipped.append(Skipped(title, f"only {len(text)} characters of text after cleaning"))
            continue
        owner = work_owner[title]
        year = death_years[owner]
        documents.append(
            Document(
                title=title,
                author=author_name(owner),
                text=text,
                death_year=year,
                source_url=page_url(title, client.api_url),
                license=LICENSE.format(year=year),
                source="wikisource",
            )
        )
    return WikisourceResult(documents, skipped)
