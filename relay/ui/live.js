// Relay's live story view. The server pushes each change of the open story over Server-Sent
// Events (/relay/live, see relay/live.py); this script puts it into the page's slots. It never
// builds HTML from user text itself: every fragment arrives escaped from the server.
//
// A long story arrives as a window of its newest cards ([id, seq, html], in seq order); later
// messages carry only cards to put in place ("upsert", by seq) or take out ("remove"). Older
// cards come from /relay/older in pages when the reader scrolls up to the "earlier paragraphs"
// button or presses it.
window.relayLive = (() => {
  let source = null;
  let current = { story: null, lang: "ko", writer: "" };
  const blank = () => ({ head: 0, cards: [], header: "", status: "", turn: "", turn_state: null, first: 0, more: false,
                         older: "", olderMore: null, presence: "" });
  let state = blank();
  let loadingOlder = null;  // the story whose older page is being fetched
  let reading = false;
  const turnListeners = [];  // onTurnChange callbacks: each gets the model turn's state when it changes
  let held = false, backlog = [];
  let draft = null;  // the id of the draft in the composer, sent with "add" so a retry is stored once  // hold(true) queues changes instead of showing them (a slow network, in tests)

  const $ = (id) => document.getElementById(id);

  function localTimes(root) {
    for (const el of (root || document).querySelectorAll("time.relay-time[datetime]")) {
      if (el.dataset.local) continue;
      const d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) continue;
      const pad = (n) => String(n).padStart(2, "0");
      el.textContent = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
      el.title = el.getAttribute("datetime");
      el.dataset.local = "1";
    }
  }

  function absoluteLinks(root) {
    const base = location.href.split("?")[0].split("#")[0];
    for (const a of (root || document).querySelectorAll("a.relay-share")) {
      const href = base + a.getAttribute("href").replace(/^[^?]*/, "");
      a.href = href;
      a.textContent = href;
    }
  }

  // The page itself scrolls (the desk sticks to the window's bottom): "near the bottom" is the window's.
  function nearBottom() {
    const doc = document.scrollingElement || document.documentElement;
    return doc.scrollHeight - doc.scrollTop - window.innerHeight < 400;
  }

  function toLatest() {
    const timeline = $("relay-timeline");
    const last = timeline && timeline.lastElementChild;
    if (!last) return;
    // Just above the desk that covers the bottom of the window.
    const desk = $("relay-desk");
    const covered = desk ? desk.getBoundingClientRect().height : 0;
    const bottom = last.getBoundingClientRect().bottom + window.scrollY;
    window.scrollTo({ top: Math.max(0, bottom - (window.innerHeight - covered) + 16) });
  }

  // The page's base address (what relay/live and relay/older hang off).
  function base() {
    return location.href.split("?")[0].split("#")[0].replace(/[^/]*$/, "");
  }

  function paintParts() {
    $("relay-header").innerHTML = state.header || "";
    $("relay-status").innerHTML = state.status || "";
    const mine = state.turn_state && current.writer && state.turn_state.holder_id === current.writer;
    const turn = $("relay-turn"), watched = mine ? "" : state.turn || "";
    // Only when it changed: a co-writer's token view of a waiting suggestion (token_view.js) stays loaded.
    if (turn.relayPainted !== watched) { turn.innerHTML = watched; turn.relayPainted = watched; }
    paintPresence();
  }

  // Who is here (writers with a tab open on the story) and who holds the model's turn: a slot of its own.
  function paintPresence() {
    const slot = $("relay-presence");
    if (slot && slot.innerHTML !== (state.presence || "")) slot.innerHTML = state.presence || "";
    gateButtons();
  }

  // "AI 이어쓰기" (and its siblings) only when the model may write for this writer now, else disabled with the
  // reason beside it; "중지" only while the model writes for this writer. The server checks again on a press.
  function gateButtons() {
    const gate = state.ai_gate || {};
    const mine = !!(gate.holder_id && current.writer && gate.holder_id === current.writer);
    const reason = current.story ? gate.rule || (mine ? "" : gate.busy) || "" : "";
    for (const id of ["relay-ai", "relay-alts", "relay-regen"]) {
      const button = $(id);
      if (button && button.disabled !== !!reason) button.disabled = !!reason;
      if (button && button.title !== reason) button.title = reason;
    }
    const note = $("relay-ai-reason");
    if (note && note.textContent !== reason) note.textContent = reason;
    const stop = $("relay-stop");
    const writing = mine && state.turn_state && state.turn_state.status === "writing";
    if (stop && stop.disabled !== !writing) stop.disabled = !writing;
  }

  function render(first) {
    const timeline = $("relay-timeline");
    if (!timeline) return false;
    const stick = first || nearBottom();
    paintParts();
    timeline.innerHTML = state.cards.map((c) => c[2]).join("") || state.empty || "";
    timeline.dataset.head = String(state.head || 0);
    timeline.dataset.story = String(current.story || "");
    $("relay-live").classList.toggle("relay-reading", reading);
    localTimes($("relay-live"));
    absoluteLinks($("relay-live"));
    olderButton();
    if (stick) requestAnimationFrame(toLatest);
    jumpButton();
    return true;
  }

  function jumpButton() {
    const jump = $("relay-jump");
    if (jump) jump.hidden = !current.story || nearBottom();
    placeJump();
  }

  // The "↓" button floats just above the desk (never over the suggestion or the composer), however tall it is.
  function placeJump() {
    const desk = $("relay-desk");
    if (!desk) return;
    const top = desk.getBoundingClientRect().top;
    const above = Math.max(0, Math.min(window.innerHeight, window.innerHeight - top)) + 8;
    document.documentElement.style.setProperty("--relay-desk-top", above + "px");
  }

  // The desk's fold: the writer hides the desk down to its bar and brings it back; the page remembers it.
  const FOLD_KEY = "relay.deskFolded";
  function fold(folded) {
    const desk = $("relay-desk"), toggle = $("relay-desk-toggle");
    if (!desk || !toggle) return;
    desk.classList.toggle("relay-desk-folded", folded);
    toggle.setAttribute("aria-expanded", folded ? "false" : "true");
    try { localStorage.setItem(FOLD_KEY, folded ? "1" : "0"); } catch (err) { /* private mode: not remembered */ }
    requestAnimationFrame(placeJump);
  }
  function foldAsRemembered() {
    const desk = $("relay-desk");
    if (!desk || desk.dataset.foldSet) return;
    let folded = false;
    try { folded = localStorage.getItem(FOLD_KEY) === "1"; } catch (err) { /* nothing remembered */ }
    desk.dataset.foldSet = "1";
    if (folded) fold(true);
    if (window.ResizeObserver) new ResizeObserver(placeJump).observe(desk);  // a suggestion opening or closing
  }
  setInterval(() => { foldAsRemembered(); placeJump(); }, 500);
  window.addEventListener("resize", placeJump);

  // Whether the story has paragraphs before the first card shown: the live window's word until the
  // reader has loaded cards older than the window, then the last older page's.
  function hasOlder() {
    if (!state.cards.length) return false;
    if (state.olderMore !== null && state.first && state.cards[0][1] < state.first) return state.olderMore;
    return !!state.more;
  }

  function olderButton() {
    const button = $("relay-older");
    if (!button) return;
    button.textContent = state.older || "";
    button.hidden = !current.story || !hasOlder();
  }

  function node(html) {
    const t = document.createElement("template");
    t.innerHTML = html;
    return t.content.firstElementChild;
  }

  // Put a card where its seq belongs (state and page), replacing one with the same id.
  function place(card, timeline) {
    let i = state.cards.length;
    while (i > 0 && state.cards[i - 1][1] > card[1]) i--;
    state.cards.splice(i, 0, card);
    if (!timeline) return;
    const el = node(card[2]);
    if (!el) return;
    let after = timeline.lastElementChild;
    while (after && Number(after.dataset.seq) > card[1]) after = after.previousElementSibling;
    if (after && after.dataset.seq) after.after(el); else timeline.prepend(el);
    localTimes(el);
  }

  // The cards of an update: out what was undone or hidden (and what changed), then each new card in its place.
  function patchCards(remove, upsert) {
    const timeline = $("relay-timeline");
    const gone = new Set(remove.concat(upsert.map((c) => c[0])).map(Number));
    if (gone.size) state.cards = state.cards.filter((c) => !gone.has(Number(c[0])));
    if (timeline) {
      if (!timeline.querySelector(".relay-para")) timeline.innerHTML = "";  // the "no paragraphs yet" note
      for (const el of [...timeline.querySelectorAll(".relay-para[data-id]")]) {
        if (gone.has(Number(el.dataset.id))) el.remove();
      }
    }
    for (const card of upsert) place(card, timeline);
    if (timeline && !state.cards.length) timeline.innerHTML = state.empty || "";
  }

  function apply(message) {
    if (message.kind === "error") {
      state = { ...blank(), header: `<p class="relay-error">${message.message}</p>` };
      render(true);
      return;
    }
    const first = message.kind === "full";
    for (const key of ["header", "status", "turn", "turn_state", "head", "empty", "first", "more", "older", "presence", "ai_gate"]) {
      if (key in message) state[key] = message[key];
    }
    if (first) {
      state.cards = message.cards || [];
      state.olderMore = null;
      render(true);
    } else if (!$("relay-timeline")) {  // the slot is not on the page now: keep the state for when it is
      if ("upsert" in message || "remove" in message) patchCards(message.remove || [], message.upsert || []);
    } else {
      const stick = nearBottom();
      paintParts();
      if ("upsert" in message || "remove" in message) patchCards(message.remove || [], message.upsert || []);
      const timeline = $("relay-timeline");
      timeline.dataset.head = String(state.head || 0);
      absoluteLinks($("relay-live"));
      olderButton();
      if (stick) requestAnimationFrame(toLatest);
      jumpButton();
    }
    if ("turn_state" in message) turnListeners.forEach((fn) => fn(state.turn_state));
    if ("steering" in message || "head" in message) steeringChanged(message);
  }

  // Steering (relay/ui/steering.py): the story's memory, note and cards as every tab shows them, kept for the
  // panel's slot (which appears when its accordion is first opened); after a change, the panel refreshes the
  // boxes this writer has not edited, and its "what the model reads" view if it is showing.
  let steering = { html: "", n: 0 };
  function showSteering() {
    const slot = $("relay-steering-live");
    if (slot && slot.dataset.shown !== String(steering.n)) {
      slot.innerHTML = steering.html;
      slot.dataset.shown = String(steering.n);
    }
  }
  function steeringChanged(message) {
    const first = message.kind === "full";
    if ("steering" in message) {
      steering = { html: message.steering || "", n: steering.n + 1 };
      showSteering();
      if (!first) $("relay-steer-sync")?.click();
    }
    const view = $("relay-reads");
    if (!first && view && view.offsetParent !== null) $("relay-reads-refresh")?.click();
  }
  setInterval(showSteering, 500);

  // The page of cards before the first one shown, put on top without moving what the reader is looking at.
  async function loadOlder() {
    const story = current.story;
    if (loadingOlder === story || !hasOlder()) return;
    loadingOlder = story;
    try {
      const url = new URL("relay/older", base());
      url.searchParams.set("story", story);
      url.searchParams.set("before", state.cards[0][1]);
      url.searchParams.set("lang", current.lang);
      const response = await fetch(url);
      if (!response.ok || current.story !== story) return;
      const page = await response.json();
      if (current.story !== story || !state.cards.length) return;
      const timeline = $("relay-timeline");
      const anchor = timeline && timeline.firstElementChild;
      const top = anchor ? anchor.getBoundingClientRect().top : 0;
      const older = page.cards.filter((c) => c[1] < state.cards[0][1]);
      state.cards = older.concat(state.cards);
      state.olderMore = !!page.more;
      olderButton();
      if (timeline && older.length) {
        const t = document.createElement("template");
        t.innerHTML = older.map((c) => c[2]).join("");
        localTimes(t.content);
        timeline.prepend(t.content);
        if (anchor) window.scrollBy({ top: anchor.getBoundingClientRect().top - top, behavior: "instant" });
      }
    } catch (e) {
      // A failed page leaves the button in place: pressing it tries again.
    } finally {
      if (loadingOlder === story) loadingOlder = null;
    }
  }

  // Scrolling up to within a screen of the button loads the next older page, as pressing it does.
  let lastY = window.scrollY;
  function onScroll() {
    jumpButton();
    const y = window.scrollY, up = y < lastY;
    lastY = y;
    const button = $("relay-older");
    if (!up || !button || button.hidden) return;
    const rect = button.getBoundingClientRect();
    if (rect.bottom > -window.innerHeight && rect.top < window.innerHeight) loadOlder();
  }

  // The page's language as the server picks it (relay.ui_text.pick_lang): the browser's first language.
  function pageLang() {
    const first = ((navigator.languages && navigator.languages[0]) || navigator.language || "").toLowerCase();
    return !first || first.startsWith("ko") ? "ko" : "en";
  }

  function open(story, lang, writer) {
    if (source) { source.close(); source = null; }
    current = { story, lang: lang || pageLang(), writer: writer || "" };
    state = blank();
    if (!story) { render(true); return; }
    // The address bar names the open story, so a reload or a shared address opens it again.
    const here = new URL(location.href);
    if (here.searchParams.get("story") !== String(story)) {
      here.searchParams.set("story", story);
      history.replaceState(null, "", here);
    }
    const url = new URL("relay/live", base());
    url.searchParams.set("story", story);
    url.searchParams.set("lang", current.lang);
    if (current.writer) url.searchParams.set("writer", current.writer);  // shown among who is here
    lastDraft = "";
    setTimeout(restoreDraft, 300);
    source = new EventSource(url);
    source.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (held) backlog.push(message); else apply(message);
    };
  }

  setInterval(paintPresence, 500);  // its slot may be re-created by Gradio too

  // The composer's unsent draft survives a reload: kept in this browser per story (localStorage),
  // put back when the story opens with an empty composer, forgotten once it is added or erased.
  const draftKey = () => "relay-draft-" + current.story;
  const composerBox = () => document.querySelector("#relay-composer textarea");
  let lastDraft = "";
  function keepDraft(value) {
    lastDraft = value;
    try { if (value) localStorage.setItem(draftKey(), value); else localStorage.removeItem(draftKey()); } catch (e) {}
  }
  function restoreDraft() {
    const box = composerBox();
    let saved = null;
    try { saved = localStorage.getItem(draftKey()); } catch (e) {}
    if (!box || !saved || box.value) return;
    box.value = saved;
    lastDraft = saved;
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }
  document.addEventListener("input", (e) => {
    if (current.story && e.target && e.target.closest && e.target.closest("#relay-composer")) keepDraft(e.target.value);
  });
  setInterval(() => {  // the page emptied the composer (the paragraph was added): forget the draft
    const box = composerBox();
    if (current.story && box && !box.value && lastDraft) keepDraft("");
  }, 500);

  // Gradio may re-create the slot (e.g. when a tab is shown again): put the last state back.
  setInterval(() => {
    const timeline = $("relay-timeline");
    if (timeline && current.story && timeline.dataset.story !== String(current.story)) render(false);
  }, 500);

  window.addEventListener("scroll", onScroll, { passive: true });
  document.addEventListener("click", (e) => {
    if (e.target && e.target.id === "relay-jump") toLatest();
    const toggle = e.target && e.target.closest && e.target.closest("#relay-desk-toggle");
    if (toggle) fold(toggle.getAttribute("aria-expanded") === "true");
    if (e.target && e.target.id === "relay-older") loadOlder();
  });

  // Keyboard: Ctrl+Enter adds the paragraph (in the composer) or accepts the suggestion (in the
  // preview); Alt+←/→ flips between suggestions.
  document.addEventListener("keydown", (e) => {
    const inside = (id) => e.target && e.target.closest && e.target.closest("#" + id);
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      if (inside("relay-composer")) { e.preventDefault(); $("relay-add")?.click(); }
      else if (inside("relay-preview")) { e.preventDefault(); $("relay-accept")?.click(); }
    } else if (e.altKey && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
      const button = $(e.key === "ArrowLeft" ? "relay-swipe-prev" : "relay-swipe-next");
      if (button && !button.disabled) { e.preventDefault(); button.click(); }
    }
  });

  return {
    open,
    head: () => state.head || 0,
    draftId: () => (draft = draft || Date.now().toString(36) + Math.random().toString(36).slice(2, 12)),
    newDraft: () => { draft = null; },
    story: () => current.story,
    turnState: () => state.turn_state,
    setReading: (on) => { reading = !!on; const live = $("relay-live"); if (live) live.classList.toggle("relay-reading", reading); },
    onTurnChange: (fn) => { turnListeners.push(fn); },
    localTimes,
    loadOlder,
    hold: (on) => {
      held = !!on;
      if (!held) { const queued = backlog; backlog = []; queued.forEach(apply); }
    },
  };
})();
