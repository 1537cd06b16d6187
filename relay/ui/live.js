// Relay's live story view. The server pushes each change of the open story over Server-Sent
// Events (/relay/live, see relay/live.py); this script puts it into the page's slots. It never
// builds HTML from user text itself: every fragment arrives escaped from the server.
window.relayLive = (() => {
  let source = null;
  let current = { story: null, lang: "ko", writer: "" };
  let state = { head: 0, cards: [], header: "", status: "", turn: "", turn_state: null };
  let reading = false;
  let onTurn = null;
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

  function render(first) {
    const timeline = $("relay-timeline");
    if (!timeline) return false;
    const stick = first || nearBottom();
    $("relay-header").innerHTML = state.header || "";
    $("relay-status").innerHTML = state.status || "";
    const mine = state.turn_state && current.writer && state.turn_state.holder_id === current.writer;
    $("relay-turn").innerHTML = mine ? "" : state.turn || "";
    timeline.innerHTML = state.cards.join("") || state.empty || "";
    timeline.dataset.head = String(state.head || 0);
    timeline.dataset.story = String(current.story || "");
    $("relay-live").classList.toggle("relay-reading", reading);
    localTimes($("relay-live"));
    absoluteLinks($("relay-live"));
    if (stick) requestAnimationFrame(toLatest);
    jumpButton();
    return true;
  }

  function jumpButton() {
    const jump = $("relay-jump");
    if (jump) jump.hidden = !current.story || nearBottom();
  }

  function apply(message) {
    if (message.kind === "error") {
      state = { head: 0, cards: [], header: `<p class="relay-error">${message.message}</p>`, status: "", turn: "", turn_state: null };
      render(true);
      return;
    }
    const first = message.kind === "full";
    for (const key of ["header", "status", "turn", "turn_state", "head", "empty"]) {
      if (key in message) state[key] = message[key];
    }
    if ("cards" in message) state.cards = message.cards;
    if ("append" in message) state.cards = state.cards.concat(message.append);
    render(first);
    if (onTurn && ("turn_state" in message)) onTurn(state.turn_state);
  }

  // The page's language as the server picks it (relay.ui_text.pick_lang): the browser's first language.
  function pageLang() {
    const first = ((navigator.languages && navigator.languages[0]) || navigator.language || "").toLowerCase();
    return !first || first.startsWith("ko") ? "ko" : "en";
  }

  function open(story, lang, writer) {
    if (source) { source.close(); source = null; }
    current = { story, lang: lang || pageLang(), writer: writer || "" };
    state = { head: 0, cards: [], header: "", status: "", turn: "", turn_state: null };
    if (!story) { render(true); return; }
    // The address bar names the open story, so a reload or a shared address opens it again.
    const here = new URL(location.href);
    if (here.searchParams.get("story") !== String(story)) {
      here.searchParams.set("story", story);
      history.replaceState(null, "", here);
    }
    const url = new URL("relay/live", location.href.split("?")[0].split("#")[0].replace(/[^/]*$/, ""));
    url.searchParams.set("story", story);
    url.searchParams.set("lang", current.lang);
    source = new EventSource(url);
    source.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (held) backlog.push(message); else apply(message);
    };
  }

  // Gradio may re-create the slot (e.g. when a tab is shown again): put the last state back.
  setInterval(() => {
    const timeline = $("relay-timeline");
    if (timeline && current.story && timeline.dataset.story !== String(current.story)) render(false);
  }, 500);

  window.addEventListener("scroll", jumpButton, { passive: true });
  document.addEventListener("click", (e) => { if (e.target && e.target.id === "relay-jump") toLatest(); });

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
    onTurnChange: (fn) => { onTurn = fn; },
    localTimes,
    hold: (on) => {
      held = !!on;
      if (!held) { const queued = backlog; backlog = []; queued.forEach(apply); }
    },
  };
})();
