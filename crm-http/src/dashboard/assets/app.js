// crm dashboard: the project's own script, no libraries.
// Definitions open on click or Enter as well as on hover/focus, and close on Escape.
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.info");
  if (!button) return;
  const def = document.getElementById(button.getAttribute("aria-describedby"));
  if (def) def.classList.toggle("open");
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  document.querySelectorAll(".def.open").forEach((d) => d.classList.remove("open"));
});

// The inbox's live updates: one EventSource on /dashboard/inbox/events.
// A status change updates the message's tick in place; a new message or
// an assignment re-reads the page and swaps the list (and the open
// thread's messages) without a reload; `resync` (this tab fell behind)
// swaps both. The send box is never touched, so typing is not lost.
(() => {
  const inbox = document.getElementById("inbox");
  const data = document.getElementById("inbox-strings");
  if (!inbox || !data || !window.EventSource) return;
  const strings = JSON.parse(data.textContent);
  const open = inbox.dataset.contact || "";
  const live = document.getElementById("live-state");
  const messages = () => document.getElementById("messages");
  const bottom = () => { const m = messages(); if (m) m.scrollTop = m.scrollHeight; };
  bottom();

  const setTick = (tick, status) => {
    const t = strings.ticks[status];
    if (!t) return;
    tick.dataset.status = status;
    tick.textContent = t.tick;
    tick.setAttribute("aria-label", t.label);
    tick.title = t.label;
  };

  let timer = null;
  let wanted = new Set();
  const refresh = (ids) => {
    ids.forEach((id) => wanted.add(id));
    clearTimeout(timer);
    timer = setTimeout(swap, 150);
  };
  const swap = async () => {
    const ids = [...wanted];
    wanted = new Set();
    let response;
    try {
      response = await fetch(location.href, { credentials: "same-origin" });
    } catch (_) {
      return;
    }
    if (!response.ok) return;
    const next = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ids) {
      const now = document.getElementById(id);
      const fresh = next.getElementById(id);
      if (now && fresh) now.replaceWith(document.adoptNode(fresh));
    }
    if (ids.includes("messages")) bottom();
  };

  const source = new EventSource("/dashboard/inbox/events");
  // On every (re)connection, re-read what may have changed while no
  // stream was open (between the page's render and now, or a drop).
  source.addEventListener("ready", () => {
    inbox.dataset.live = "on";
    if (live) live.textContent = strings.live_on;
    refresh(open ? ["threads", "messages"] : ["threads"]);
  });
  source.addEventListener("error", () => {
    inbox.dataset.live = "off";
    if (live) live.textContent = strings.live_off;
  });
  source.addEventListener("message_status", (event) => {
    const d = JSON.parse(event.data);
    const item = document.querySelector(`[data-message-id="${CSS.escape(String(d.message_id))}"]`);
    if (item) {
      const tick = item.querySelector(".tick");
      if (tick) setTick(tick, d.status);
      const fail = item.querySelector(".fail");
      if (fail && d.status === "failed") {
        fail.querySelector(".reason").textContent = d.error || "";
        fail.hidden = false;
      }
    }
    refresh(["threads"]);
  });
  source.addEventListener("message_new", (event) => {
    const d = JSON.parse(event.data);
    refresh(d.contact_id === open ? ["threads", "messages"] : ["threads"]);
  });
  source.addEventListener("message_updated", (event) => {
    const d = JSON.parse(event.data);
    if (d.contact_id === open) refresh(["messages"]);
  });
  source.addEventListener("thread", () => refresh(["threads"]));
  source.addEventListener("resync", () => refresh(["threads", "messages"]));
  window.addEventListener("pagehide", () => source.close());
})();

// The management pages' live updates: an element with
// `data-live-refresh="id …"` names the parts of the page to re-read when
// the account's event stream says something moved (a campaign, one of its
// messages, a channel). The parts are swapped in place, at most a few
// times a second, so a campaign's counters and a channel's QR code stay
// current without a reload. `data-live-poll="ms"` also re-reads them on a
// timer, for what changes without an event (a webhook's attempts).
(() => {
  const marker = document.querySelector("[data-live-refresh]");
  if (!marker || !window.EventSource || document.getElementById("inbox")) return;
  const ids = marker.dataset.liveRefresh.split(/\s+/).filter(Boolean);
  const wanted = (marker.dataset.liveEvents || "campaign message_status message_new channel").split(/\s+/);
  let timer = null;
  let busy = false;
  const swap = async () => {
    if (busy) { timer = setTimeout(swap, 300); return; }
    busy = true;
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const id of ids) {
        const now = document.getElementById(id);
        const fresh = next.getElementById(id);
        if (now && fresh && now.innerHTML !== fresh.innerHTML) now.replaceWith(document.adoptNode(fresh));
      }
    } catch (_) {
      // Offline for a moment: the next event tries again.
    } finally {
      busy = false;
    }
  };
  const refresh = () => { clearTimeout(timer); timer = setTimeout(swap, 250); };
  // What moves without an event (a webhook attempt) is re-read on a timer.
  const poll = Number(marker.dataset.livePoll || 0);
  if (poll >= 1000) setInterval(() => { if (!document.hidden) refresh(); }, poll);
  const source = new EventSource("/dashboard/inbox/events");
  source.addEventListener("ready", () => { document.body.dataset.live = "on"; refresh(); });
  source.addEventListener("error", () => { document.body.dataset.live = "off"; });
  for (const name of wanted) source.addEventListener(name, refresh);
  source.addEventListener("resync", refresh);
  window.addEventListener("pagehide", () => source.close());
})();
