// The token probability view's interaction (HTML from relay/ui/token_view.py): the "show probabilities"
// toggle (a class on <body>, remembered in the browser), and the popover a token opens on hover (desktop)
// or tap (phone, keyboard): the chosen token's probability and the likeliest alternatives. On a suggestion of
// the writer's turn (data-branchable="1") the popover offers to rewrite from that token: the page sends only
// the candidate, the position and the alternative's index (the server rebuilds the prefix from stored ids)
// by pressing the hidden #relay-branch-go button, whose handler reads window.__relayBranch.
(() => {
  const KEY = "relay-probs";
  let pop = null, openTok = null, pinned = false, hideTimer = null;

  const setOn = (on) => {
    document.body.classList.toggle("relay-probs-on", on);
    try { localStorage.setItem(KEY, on ? "1" : "0"); } catch (e) { /* private mode: not remembered */ }
    if (on) watchCards(); else hide();
  };
  const isOn = () => document.body.classList.contains("relay-probs-on");

  // An accepted AI paragraph's card, and a suggestion co-writers watch waiting in the model's turn, only say
  // they have a record (data-tokens): the view is fetched from /relay/tokens (relay/ui/token_route.py), by the
  // paragraph's seq or by the turn and the suggestion's place in it, once the toggle is on and it nears the screen.
  const watched = new WeakSet();
  let near = null, pending = false;
  const nearScreen = () => near || (near = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) { near.unobserve(entry.target); watched.delete(entry.target); load(entry.target); }
    }
  }, { rootMargin: "300px" }));
  const loading = new WeakSet();  // a card is fetched once at a time: a second load would add a second view
  const load = async (card) => {
    const story = window.relayLive && relayLive.story();
    if (!isOn() || !story || loading.has(card) || card.querySelector(".relay-tokens")) return;
    const url = new URL("relay/tokens", location.href.split("?")[0].split("#")[0].replace(/[^/]*$/, ""));
    url.searchParams.set("story", story);
    if (card.dataset.turn) {
      url.searchParams.set("turn", card.dataset.turn);
      url.searchParams.set("n", card.dataset.n);
    } else {
      url.searchParams.set("seq", card.dataset.seq);
    }
    url.searchParams.set("lang", document.documentElement.dataset.relayLang === "en" ? "en" : "ko");
    loading.add(card);
    try {
      const response = await fetch(url);
      const html = response.ok ? await response.text() : "";
      if (!html || card.querySelector(".relay-tokens")) return;  // checked after the last wait, then added at once
      card.querySelector(".relay-text")?.insertAdjacentHTML("afterend", html);
      card.classList.add("relay-tk-loaded");
    } catch (e) { watched.delete(card); /* offline: tried again when the card is redrawn */ }
    finally { loading.delete(card); }
  };
  const watchCards = () => {
    pending = false;
    if (!isOn()) return;
    const cards = "#relay-timeline .relay-para[data-tokens]:not(.relay-tk-loaded), "
      + "#relay-turn .relay-watch-candidate[data-tokens]:not(.relay-tk-loaded)";
    for (const card of document.querySelectorAll(cards)) {
      if (!watched.has(card)) { watched.add(card); nearScreen().observe(card); }
    }
  };
  new MutationObserver(() => {
    if (isOn() && !pending) { pending = true; requestAnimationFrame(watchCards); }
  }).observe(document.documentElement, { childList: true, subtree: true });
  const remembered = () => { try { return localStorage.getItem(KEY) === "1"; } catch (e) { return false; } };

  const shown = (piece) => (piece === "" ? "∅" : piece.replace(/\n/g, "↵").replace(/ /g, "␣"));
  const percent = (p) => (p < 0.001 ? "<0.1%" : (p * 100).toFixed(p < 0.1 ? 1 : 0) + "%");
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  const popover = () => {
    if (!pop) {
      pop = el("div");
      pop.id = "relay-tk-pop";
      pop.hidden = true;
      pop.setAttribute("role", "dialog");
      pop.addEventListener("mouseenter", () => clearTimeout(hideTimer));
      pop.addEventListener("mouseleave", () => { if (!pinned) hideSoon(); });
      document.body.appendChild(pop);
    }
    return pop;
  };

  const hide = () => {
    clearTimeout(hideTimer);
    if (pop) pop.hidden = true;
    if (openTok) openTok.classList.remove("relay-tk-open");
    openTok = null;
    pinned = false;
  };
  const hideSoon = () => { clearTimeout(hideTimer); hideTimer = setTimeout(hide, 250); };

  const branch = (tok, choice) => {
    const holder = tok.closest("[data-candidate]");
    if (!holder) return;
    window.__relayBranch = JSON.stringify({ candidate: holder.dataset.candidate, at: Number(tok.dataset.i),
                                            choice: choice });
    hide();
    document.getElementById("relay-branch-go")?.click();
  };

  const show = (tok, pin) => {
    const view = tok.closest(".relay-tokens");
    if (!view) return;
    let words = {}, top = [];
    try { words = JSON.parse(view.dataset.words || "{}"); top = JSON.parse(tok.dataset.top || "[]"); } catch (e) { return; }
    const branchable = view.dataset.branchable === "1" && !!tok.closest("[data-candidate]");
    const box = popover();
    box.replaceChildren();
    clearTimeout(hideTimer);
    if (openTok) openTok.classList.remove("relay-tk-open");
    openTok = tok;
    pinned = pin;
    tok.classList.add("relay-tk-open");
    const close = el("button", "relay-pop-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", words.close || "Close");
    close.addEventListener("click", hide);
    box.appendChild(close);
    const p = tok.dataset.p === undefined ? null : Number(tok.dataset.p);
    const head = el("div", "relay-pop-head");
    head.append(el("span", "", (words.chosen || "") + ": "), el("b", "relay-pop-piece", shown(tok.textContent)));
    if (p !== null) head.append(el("span", "", " · " + percent(p)));
    box.appendChild(head);
    if (top.length) {
      // On a phone nothing shows a button's title: say what ↻ does where the list starts.
      box.appendChild(el("div", "relay-pop-head", (words.alternatives || "") + (branchable ? " · ↻ " + words.branch : "")));
      const table = el("table");
      for (const [piece, q, index, chosen] of top) {
        const row = el("tr", chosen ? "relay-pop-chosen" : "");
        const bar = el("span", "relay-pop-bar");
        bar.style.width = Math.max(2, Math.round(q * 100)) + "%";
        const barCell = el("td");
        barCell.style.width = "25%";
        barCell.appendChild(bar);
        row.append(el("td", "relay-pop-piece", shown(piece)), el("td", "relay-pop-p", percent(q)), barCell);
        if (branchable) {
          const cell = el("td");
          const go = el("button", "relay-pop-branch", "↻");
          go.type = "button";
          go.title = words.branch || "";
          go.setAttribute("aria-label", (words.branch || "") + ": " + shown(piece));
          go.addEventListener("click", () => branch(tok, index));
          cell.appendChild(go);
          row.appendChild(cell);
        }
        table.appendChild(row);
      }
      box.appendChild(table);
    }
    if (branchable) {
      const here = el("button", "relay-pop-here", words.here || "");
      here.type = "button";
      here.addEventListener("click", () => branch(tok, null));
      box.appendChild(here);
    }
    box.hidden = false;
    place(box, tok);
  };

  // Under the token, or above it when there is no room below; always inside the window.
  const place = (box, tok) => {
    const r = tok.getBoundingClientRect();
    const w = box.offsetWidth, h = box.offsetHeight;
    const left = Math.min(Math.max(8, r.left), window.innerWidth - w - 8);
    let top = r.bottom + 6;
    if (top + h > window.innerHeight - 8) top = Math.max(8, r.top - h - 6);
    box.style.left = left + "px";
    box.style.top = top + "px";
  };

  const tokenOf = (target) => (target instanceof Element ? target.closest(".relay-tokens .relay-tk[data-i]") : null);
  const hovers = () => window.matchMedia("(hover: hover) and (pointer: fine)").matches;

  document.addEventListener("mouseover", (ev) => {
    const tok = tokenOf(ev.target);
    if (!tok || !hovers() || (pinned && openTok)) return;
    show(tok, false);
  });
  document.addEventListener("mouseout", (ev) => {
    const tok = tokenOf(ev.target);
    if (tok && tok === openTok && !pinned) hideSoon();
  });
  document.addEventListener("click", (ev) => {
    const tok = tokenOf(ev.target);
    if (tok) { show(tok, true); return; }
    if (pop && !pop.hidden && !pop.contains(ev.target)) hide();
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { hide(); return; }
    const tok = tokenOf(ev.target);
    if (tok && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); show(tok, true); }
  });
  window.addEventListener("scroll", () => { if (openTok && pop && !pop.hidden) place(pop, openTok); }, true);

  // The toggle is a Gradio checkbox (relay/ui/story.py calls setOn on its change and sets it from remembered()).
  window.relayTokens = { setOn, remembered };
})();
